"""`bench export --format json|csv`: `load_results`' frames as text, column for column."""

from __future__ import annotations

import json

import pandas as pd

WHOLE = ("seed", "n_train", "n", "step", "trained_params", "stored_params", "total_params",
         "stored_bytes")  # fmt: skip


def rows_text(frame: pd.DataFrame, format_: str) -> str:
    """`frame` (`results_frame` or `losses_frame`) as JSON records or CSV; settings, a dict in
    the frame, is a JSON object in either (sorted keys in CSV); missing values are null / empty."""
    if format_ == "json":
        text = frame.to_json(orient="records", force_ascii=False, double_precision=15)
        records = json.loads(text)
        return json.dumps(records, indent=1, ensure_ascii=False) + "\n"
    flat = frame.assign(settings=frame["settings"].map(lambda s: json.dumps(s, sort_keys=True)))
    whole = [c for c in WHOLE if c in flat]  # counts pandas holds as floats beside a missing one
    return flat.astype(dict.fromkeys(whole, "Int64")).to_csv(index=False)
