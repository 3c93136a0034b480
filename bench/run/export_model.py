"""`bench export --format model`: a finished cell's trained model as a folder its users load
without the harness.

Each method writes its library's format (`AdaptedLM.export`): PEFT adapter folders (LoRA,
prefix and prompt tuning, every `peft` method), the `adapters` library's `save_adapter`
folders, transformers `save_pretrained` folders (fine-tuned, FT-top, cocktail). A hybrid that
decodes with other models (the ensemble) writes each under `parts/ROLE`; a method no library
has (infix, BART's three-prefix tuning) writes the harness's own folder (`cell.json` +
`stored.safetensors`, read by `bench.engine.cell.load_stored_model`). Every folder has the
tokenizer, `bench_export.json` (the cell, its method and settings, the format and the base it
needs) and a README saying how to load it; an adapter of a base that no hub has (the mini LMs,
`random:` configs) comes with that base in `base/`.

It reads the store and the cell's files (checked against their digests) and writes only the
new folder, built beside it and renamed into place: an error leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, Export
from bench.engine.loading import load_model
from bench.errors import UserError
from bench.mini.config import MINI_LMS
from bench.run.predict import load_finished
from bench.spec.model_specs import RANDOM_PREFIX
from bench.spec.settings import Cell

# What the loading code in a folder's README imports, by format.
IMPORTS = {
    "peft": "import peft\nimport transformers",
    "adapters": "import adapters\nimport transformers",
    "transformers": "import transformers",
    "bench": "import bench.engine.cell",
}
BENCH_FOLDER = Export(
    "bench", "model = bench.engine.cell.load_stored_model(DIR)[0]", needs_base=False
)


def export_model(results_dir: Path, cell_id: str, out: Path) -> dict[str, Any]:
    """Write cell `cell_id`'s model into the new folder `out`; returns its `bench_export.json`."""
    check_out(out)
    cell, model, tokenizer = load_finished(results_dir, cell_id)
    parts = {role: load_finished(results_dir, part)[0] for role, part in cell.depends.items()}
    building = out.parent / f".{out.name}.partial-{os.getpid()}"
    if building.is_symlink() or building.is_file():  # a leftover, never followed
        building.unlink()
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        described = write_model(model, tokenizer, cell, building, parts)
        if out.exists():  # an empty folder (check_out)
            out.rmdir()
        building.rename(out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return described


def check_out(out: Path) -> None:
    """`out` must be new or an empty folder (not a link), in an existing folder."""
    if out.is_symlink():
        raise UserError(f"--out {out} is a symbolic link; pass a new folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} exists and is not an empty folder; pass a new folder")
    if not out.parent.is_dir():
        raise UserError(f"--out {out}: {out.parent} is not a folder; create it first")


def write_model(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    cell: Cell,
    folder: Path,
    part_cells: dict[str, Cell],
) -> dict[str, Any]:
    """`model` (of `cell`) into `folder`; a hybrid's parts, each as its own cell (`part_cells`:
    role -> the stored cell it reuses), under `parts/ROLE`."""
    parts = model.parts()
    if parts:
        for role, part in parts.items():
            (folder / "parts" / role).mkdir(parents=True)
            write_model(part, tokenizer, part_cells[role], folder / "parts" / role, {})
        written = Export("parts", "# each of parts/*: see its README.md", False)
    else:
        written = model.export(folder) or _bench_folder(model, cell, folder)
    tokenizer.save_pretrained(str(folder))
    base = _base(cell, folder, model.is_encoder_decoder) if written.needs_base else None
    described = {
        "cell": cell.id,
        "task": cell.task,
        "method": cell.method,
        "label": cell.label,
        "settings": cell.settings,
        "derived_settings": model.derived_settings(),
        "format": written.format,
        "loads_with": written.loads_with,
        "base_model": base,
        "parts": sorted(parts),
    }
    (folder / "bench_export.json").write_text(json.dumps(described, indent=2) + "\n")
    (folder / "README.md").write_text(readme(described, cell))
    return described


def _bench_folder(model: AdaptedLM, cell: Cell, folder: Path) -> Export:
    from safetensors.torch import save_file

    from bench.engine.record import STORED

    stored = {k: v.detach().contiguous().cpu() for k, v in model.stored_state().items()}
    save_file(stored, str(folder / STORED))
    (folder / "cell.json").write_text(cell.model_dump_json(indent=2))
    return BENCH_FOLDER


def _base(cell: Cell, folder: Path, is_encoder_decoder: bool) -> dict[str, Any]:
    """The base model the folder is loaded onto: a hub id or path as the cell named it, or,
    for bases no hub has, saved into `base/`."""
    auto = "AutoModelForSeq2SeqLM" if is_encoder_decoder else "AutoModelForCausalLM"
    if cell.model not in MINI_LMS and not cell.model.startswith(RANDOM_PREFIX):
        load = f"{auto}.from_pretrained({cell.model!r})"
        return {"spec": cell.model, "load": load, "saved_in": None}
    loaded = load_model(cell.model, cell.seed)  # random: the cell's seed drew its weights
    loaded.model.save_pretrained(str(folder / "base"))
    loaded.tokenizer.save_pretrained(str(folder / "base"))
    return {
        "spec": cell.model,
        "checkpoint": loaded.checkpoint,
        "load": f"{auto}.from_pretrained(DIR / 'base')",
        "saved_in": "base",
    }


def readme(described: dict[str, Any], cell: Cell) -> str:
    """How to load the folder, for whoever finds it."""
    base = described["base_model"]
    lines = [
        f"# {cell.label or cell.method} on {cell.task} (cell {cell.id})",
        "",
        f"Exported by `python -m bench export --format model --cell {cell.id}`: method "
        f"`{cell.method}` with settings `{json.dumps(cell.settings)}`, trained on "
        f"{cell.task} with seed {cell.seed}. Format: **{described['format']}**.",
        "",
    ]
    if described["parts"]:
        lines += [
            "A hybrid: it decodes with the models in "
            + ", ".join(f"`parts/{p}`" for p in described["parts"])
            + f", mixing their next-token distributions at every step as the ensemble does "
            f"(settings above). Each part loads as its own README says; `python -m bench "
            f"predict --cell {cell.id}` decodes with the mixture.",
            "",
        ]
        return "\n".join(lines)
    library = IMPORTS.get(described["format"], "import transformers")  # a plugin's: its own
    lines += ["```python", "from pathlib import Path", "", library, "", "DIR = Path('.')"]
    if base is not None:
        lines.append(f"BASE = transformers.{base['load']}  # {base['spec']}")
    lines += [described["loads_with"], "```", ""]
    if base is not None and base["saved_in"] is None:
        lines.append(f"The base model is `{base['spec']}` (not included).")
    elif base is not None:
        lines.append(f"The base model (`{base['spec']}`, which no hub has) is saved in `base/`.")
    lines.append(
        f"It computes what the harness computed: `python -m bench predict --cell {cell.id}` "
        "decodes with the same weights."
    )
    return "\n".join(lines) + "\n"
