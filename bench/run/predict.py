"""`bench predict`: new inputs decoded by a finished cell's method, or by a bare model.

How a user puts a trained prefix (or any stored method) to work on new data, and how anyone
checks the search against a reference: `--model mini --set decode.rule=hf` decodes what
`transformers`' `generate` decodes. It reads the store and the cell's files, checked against
their recorded digests before they are trusted, and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from transformers import PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, BuildContext, build_method
from bench.engine.cell import device, fit_to_positions, load_stored_model
from bench.engine.encoding import encode_source
from bench.engine.generation import Hypothesis, decode, text
from bench.engine.loading import load_model
from bench.engine.precision import resolve_precision
from bench.errors import UserError, did_you_mean
from bench.results.store import Store, cell_dir, cell_problems
from bench.spec.grid import first_error
from bench.spec.registry import METHODS
from bench.spec.settings import Cell, DecodeConfig
from bench.spec.strict_yaml import load_yaml

MAX_INPUT_BYTES = 64 * 2**20  # far more text than anyone decodes in one call


@dataclass(frozen=True)
class Prediction:
    input: str
    output: str
    tokens: list[int]
    score: float


def read_inputs(path: Path) -> list[str]:
    """The file's lines (one input each), refused when it is not a regular UTF-8 text file of
    non-empty lines."""
    if not path.is_file():
        raise UserError(f"--inputs {path}: not a regular file; pass a text file, one input a line")
    if path.stat().st_size > MAX_INPUT_BYTES:
        raise UserError(f"--inputs {path} is over {MAX_INPUT_BYTES // 2**20} MiB; split it")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(
            f"--inputs {path}: not UTF-8 text (byte {error.start}); save it as UTF-8"
        ) from None
    if not lines:
        raise UserError(f"--inputs {path} is empty; write one input a line")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise UserError(f"--inputs {path}, line {number}: empty; write one input a line")
    return lines


def with_overrides(config: DecodeConfig, assignments: tuple[str, ...]) -> DecodeConfig:
    """`config` with each `decode.KEY=VALUE` applied (VALUE read as YAML: 3, 0.6, true, hf)."""
    values: dict[str, Any] = config.model_dump()
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.startswith("decode.") or not raw:
            raise UserError(
                f"--set {assignment!r}: write decode.KEY=VALUE, e.g. decode.num_beams=3"
            )
        name = key.removeprefix("decode.")
        if name not in DecodeConfig.model_fields:
            known = ", ".join(DecodeConfig.model_fields)
            raise UserError(f"--set {assignment!r}: decode has no {name!r}; it has {known}")
        values[name] = load_yaml(raw, f"--set {assignment!r}")
    try:
        return DecodeConfig.model_validate(values)
    except ValidationError as error:
        raise UserError(f"--set: {first_error(error, 'decode')}") from None


def predict_with_cell(
    results_dir: Path, cell_id: str, inputs: list[str], sets: tuple[str, ...]
) -> list[Prediction]:
    """Decode `inputs` (task sources) with the finished cell's method and decode settings."""
    cell, model, tokenizer = load_finished(results_dir, cell_id)
    config = with_overrides(cell.decode, sets)
    window = fit_to_positions(
        cell.model_copy(update={"decode": config}), model.base.config, model.prefix_length
    ).max_source_tokens
    encoded = []
    for number, line in enumerate(inputs, 1):
        ids = encode_source(tokenizer, line, 10**9)
        if len(ids) > window:
            raise UserError(
                f"input line {number} is {len(ids)} tokens, more than the {window} the cell's "
                f"model fits before {config.max_new_tokens} new tokens; shorten it"
            )
        encoded.append(ids)
    return _decode(model, tokenizer, inputs, encoded, config, cell.train.precision)


def predict_with_model(spec: str, inputs: list[str], sets: tuple[str, ...]) -> list[Prediction]:
    """Decode raw prompts (GPT-2: continued; BART: the encoder's input) with a bare model."""
    loaded = load_model(spec, seed=0)
    tokenizer = loaded.tokenizer
    finetune = METHODS.get("finetune")
    model = build_method(finetune, loaded.model, finetune.Settings(), BuildContext(tokenizer))
    config = with_overrides(DecodeConfig(), sets)
    base = loaded.model.config
    window = getattr(base, "n_positions", None) or base.max_position_embeddings
    room = window if base.is_encoder_decoder else window - config.max_new_tokens
    encoded = []
    for number, line in enumerate(inputs, 1):
        ids = tokenizer(line)["input_ids"]
        if len(ids) > room:
            raise UserError(
                f"input line {number} is {len(ids)} tokens; {spec} fits {room} before "
                f"{config.max_new_tokens} new tokens; shorten it or lower decode.max_new_tokens"
            )
        encoded.append(ids)
    return _decode(model, tokenizer, inputs, encoded, config)


def _decode(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    inputs: list[str],
    encoded: list[list[int]],
    config: DecodeConfig,
    precision: str = "fp32",
) -> list[Prediction]:
    """Decoded on the cell's device in the precision its cell decoded in (a bare model: fp32)."""
    run_device = device()
    model.to(run_device)
    found: list[Hypothesis] = decode(
        model, tokenizer, encoded, config, run_device,
        precision=resolve_precision(precision, run_device),
    )  # fmt: skip
    return [
        Prediction(line, text(tokenizer, h), h.tokens, h.score)
        for line, h in zip(inputs, found, strict=True)
    ]


def load_finished(
    results_dir: Path, cell_id: str
) -> tuple[Cell, AdaptedLM, PreTrainedTokenizerBase]:
    """A finished cell's config, trained model and tokenizer, its files checked first."""
    store = Store.open_existing(results_dir)
    try:
        cell = finished_cell(store, results_dir, cell_id)
        model, tokenizer = stored_model(store, results_dir, cell)
    finally:
        store.close()
    return cell, model, tokenizer


def finished_cell(store: Store, results_dir: Path, cell_id: str) -> Cell:
    """The cell's config, once its row says done and its files are the ones stored with it."""
    run = store.run(cell_id)
    if run is None:
        hint = did_you_mean(cell_id, [r["cell"] for r in store.runs()])
        raise UserError(
            f"no cell {cell_id!r} in {results_dir}; {hint}`bench export --format csv` lists "
            "the cell ids"
        )
    if run["status"] != "done":
        raise UserError(f"cell {cell_id} is {run['status']}, not done; run its grid first")
    problems = cell_problems(store, results_dir, cell_id)
    if problems:
        raise UserError(
            f"cell {cell_id}'s files are not the ones stored with it ({'; '.join(problems)}); "
            "rerun its grid to redo it"
        )
    path = cell_dir(results_dir, cell_id) / "cell.json"
    try:
        cell = Cell.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError):
        cell = None
    if cell is None or cell.id != cell_id:
        raise UserError(f"{path} does not describe cell {cell_id}; rerun its grid to redo it")
    return cell


def stored_model(
    store: Store, results_dir: Path, cell: Cell
) -> tuple[AdaptedLM, PreTrainedTokenizerBase]:
    """The cell's trained method and tokenizer; a hybrid's with the stored cells it reuses."""
    reused = {
        role: stored_model(store, results_dir, finished_cell(store, results_dir, dependency))[0]
        for role, dependency in cell.depends.items()
    }
    return load_stored_model(cell_dir(results_dir, cell.id), reused)
