"""The command line: `python -m bench run|report|export|compare|list|data|mini-lm|score|params|
perf`.

User errors (`UserError`) print one line and exit 2; nothing else is caught here.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shlex
import sqlite3
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape

from bench.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable

    from bench.results.bundle import ResultsSource
    from bench.results.compare import ComparisonReport

console = Console(stderr=True)


class FiniteFloat(click.FloatRange):
    """A float option within its range that is a number: NaN passes every `>=` test as False,
    and infinity makes no sense as a tolerance, a period or a share of a machine."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class OutFile(click.Path):
    """A file a command writes: a new or regular file in an existing folder, checked before the
    work (a folder, a device or a missing folder is refused, not found out after minutes)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        if path.exists() and not path.is_file():
            self.fail(f"{path} exists and is not a regular file; pass a file path", param, ctx)
        if not path.parent.is_dir():
            self.fail(f"{path.parent} is not a folder; create it first", param, ctx)
        return path


results_dir_option = click.option(
    "--results-dir",
    type=click.Path(path_type=Path),
    default=Path("results"),
    show_default=True,
    help="where bench.sqlite, cell files and reports live",
)

tolerance_option = click.option(
    "--tolerance",
    type=FiniteFloat(min=0),
    default=0.0,
    show_default=True,
    help="a significantly worse metric regresses only beyond this delta (paper scale, e.g. 0.5 "
    "BLEU); used by compare and run --check",
)

plugin_option = click.option(
    "--plugin",
    "plugins",
    multiple=True,
    help="a module to import first: it registers methods, tasks or metric suites of yours "
    "(repeatable; installed `bench.plugins` entry points load by themselves)",
)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """`--version`: what a bug report needs: bench, its git sha, torch, CUDA (and the GPU)."""
    if not value or ctx.resilient_parsing:
        return
    from bench.engine.cell import collect_provenance

    provenance = collect_provenance()
    versions, hardware = provenance["versions"], provenance["hardware"]
    gpu = f", GPU {hardware['gpu']}" if hardware["gpu"] else ""
    click.echo(
        f"bench {versions['prefix-bench']} (git {provenance['git_sha'] or 'unknown'}), "
        f"python {versions['python']}, torch {versions['torch']}, "
        f"CUDA {hardware['cuda_build'] or 'none'}{gpu}, transformers {versions['transformers']}, "
        f"peft {versions['peft']}, adapters {versions['adapters']}"
    )
    ctx.exit()


def grid_change_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--data-dir, --model, --set and --seeds: what `run` and `plan` read a grid with, so a plan
    prices the very cells the run would expand."""
    options = (
        click.option("--data-dir", type=click.Path(path_type=Path), help="official task files"),
        click.option("--model", help="override the grid's model (hub id, path, mini, random:ARCH)"),
        click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="KEY=VALUE",
            help="change the grid (repeatable): train.lr=1e-4, decode.num_beams=5, "
            "methods.prefix.settings.length=5 (a method's own train: wins over the grid's)",
        ),
        click.option("--seeds", help="these seeds instead of the grid's, e.g. 0,1,2"),
    )
    for option in reversed(options):
        command = option(command)
    return command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="print bench's version, git sha, torch, CUDA and the libraries, and exit",
)
def app() -> None:
    """Benchmark harness: fine-tuning vs lightweight adaptation of text generators."""


def _quiet_libraries() -> None:
    """transformers' warnings off, without importing it (a rerun of a finished grid never
    imports the engine): it reads the variable when it is first imported."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@app.command()
@click.option(
    "--grid",
    "grid",
    is_flag=False,
    flag_value="mini",
    default="mini",
    show_default=True,
    help="a preset in grids/ or a YAML path; bare --grid runs mini",
)
@results_dir_option
@grid_change_options
@click.option("--force", is_flag=True, help="rerun finished cells too")
@click.option(
    "--dry-run", is_flag=True, help="print the grid's plan (as `bench plan`) and run nothing"
)
@click.option(
    "--check",
    type=click.Path(path_type=Path),
    help="then compare with this baseline (bundle or results dir); exit 1 on a regression",
)
@tolerance_option
@plugin_option
@click.option(
    "--checkpoint-minutes",
    type=FiniteFloat(min=0),
    default=10.0,
    show_default=True,
    help="a running cell saves its training state this often; a rerun resumes there",
)
@click.option(
    "--executor",
    type=click.Choice(["auto", "local", "process", "ray"]),
    default="auto",
    show_default=True,
    help="process: cells side by side in worker processes, --cpus-per-cell threads each; "
    "local: one after another in this process on all cores; ray: as Ray tasks; auto: process "
    "without a GPU, local with one",
)
@click.option("--ray-address", help="ray: join this cluster (auto, or HOST:PORT); default: local")
@click.option(
    "--cpus-per-cell",
    type=FiniteFloat(min=0.01),
    help="process, ray: CPUs (torch threads) per cell [1]; process rounds down to a whole number",
)
@click.option(
    "--gpus-per-cell",
    type=FiniteFloat(min=0),
    help="ray: GPUs per cell [1 where the cluster has GPUs, else 0]",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0, max=100),
    default=2,
    show_default=True,
    help="ray: retries of a cell whose worker or node died",
)
@click.option(
    "--track",
    multiple=True,
    metavar="mlflow[=URI]|tensorboard[=DIR]",
    help="log each cell run to MLflow (default: a SQLite store in RESULTS/mlflow) or TensorBoard "
    "(default: RESULTS/tensorboard); repeatable; needs pip install -e '.[track]'",
)
def run(
    grid: str,
    results_dir: Path,
    data_dir: Path | None,
    model: str | None,
    sets: tuple[str, ...],
    seeds: str | None,
    force: bool,
    dry_run: bool,
    check: Path | None,
    tolerance: float,
    plugins: tuple[str, ...],
    checkpoint_minutes: float,
    executor: str,
    ray_address: str | None,
    cpus_per_cell: float | None,
    gpus_per_cell: float | None,
    max_retries: int,
    track: tuple[str, ...],
) -> None:
    """Run a grid: train and evaluate every cell not yet finished, then write its report.

    With --check, compare the grid's cells with a baseline: exit 1 when a matched metric is
    significantly worse by more than --tolerance, or when a cell failed."""
    from bench.reports import terminal
    from bench.results.bundle import load_source
    from bench.results.store import Store
    from bench.run.api import run_grid
    from bench.run.ray_executor import RayOptions
    from bench.run.runner import ignore_interrupts
    from bench.spec.overrides import parse_seeds

    _quiet_libraries()
    if dry_run:
        from bench.perf.plan import Target

        target = Target(threads=max(1, int(cpus_per_cell or 1)))
        _print_plan(grid, target, results_dir, data_dir, model, sets, seeds, plugins, False)
        return
    baseline = load_source(check) if check is not None else None  # bad input fails first
    ray = RayOptions(ray_address, cpus_per_cell, gpus_per_cell, max_retries)
    try:
        outcome = run_grid(
            grid,
            results_dir=results_dir,
            data_dir=data_dir,
            model=model,
            overrides=sets,
            seeds=None if seeds is None else parse_seeds(seeds),
            force=force,
            plugins=plugins,
            console=console,
            checkpoint_minutes=checkpoint_minutes,
            executor=executor,
            cpus_per_cell=max(1, int(cpus_per_cell or 1)),
            ray=ray,
            track=track,
        )
    except KeyboardInterrupt:
        ignore_interrupts()
        console.print("[yellow]interrupted[/]: finished cells are stored; rerun to resume")
        sys.exit(130)
    summary = outcome.summary
    store = Store.open_existing(results_dir)
    terminal.results_summary(store, outcome.spec.name, console)
    terminal.claims_summary(store, outcome.spec.name, console)
    store.close()
    console.print(
        f"{len(summary.done)} run, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed in {outcome.seconds:.1f}s; report: {outcome.report}"
    )
    for cell, reason in summary.failed:
        console.print(f"[red]failed[/] {escape(f'{cell.describe()}: {reason}')}")
    if baseline is not None:
        candidate = load_source(results_dir, outcome.spec.name)
        if _compare(baseline, candidate, (), tolerance, console).regressions or summary.failed:
            sys.exit(1)


@app.command()
@click.argument("grid", default="mini")
@results_dir_option
@grid_change_options
@click.option("--gpu", help="price on this GPU (H100, H200, A100, L40S, L4, A10, V100, T4, ...)")
@click.option("--peak-tflops", type=FiniteFloat(min=0.001), help="or a GPU of this dense peak")
@click.option("--mfu", type=FiniteFloat(min=0.0001), help="the GPU's MFU [measured, else 0.3]")
@click.option(
    "--mfu-from",
    type=click.Path(path_type=Path, dir_okay=False),
    help="the MFU per method measured by `perf device --json --out FILE` on that GPU",
)
@click.option("--cpus-per-cell", type=click.IntRange(min=1), default=1, show_default=True,
              help="this machine: torch threads a cell runs with")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@plugin_option
def plan(
    grid: str,
    results_dir: Path,
    data_dir: Path | None,
    model: str | None,
    sets: tuple[str, ...],
    seeds: str | None,
    gpu: str | None,
    peak_tflops: float | None,
    mfu: float | None,
    mfu_from: Path | None,
    cpus_per_cell: int,
    as_json: bool,
    plugins: tuple[str, ...],
) -> None:
    """What a grid will cost before it runs: per cell its status in the store, training steps,
    tokens, FLOPs, peak memory and time, estimated on this machine (from the store's finished
    cells of the model, else a short calibration run) or on a GPU (its datasheet peak x MFU)."""
    from bench.perf.plan import Target

    _quiet_libraries()
    target = Target(gpu, peak_tflops, mfu, mfu_from, cpus_per_cell)
    _print_plan(grid, target, results_dir, data_dir, model, sets, seeds, plugins, as_json)


def _print_plan(
    grid: str,
    target: Any,
    results_dir: Path,
    data_dir: Path | None,
    model: str | None,
    sets: tuple[str, ...],
    seeds: str | None,
    plugins: tuple[str, ...],
    as_json: bool,
) -> None:
    from bench.perf.plan import plan_grid
    from bench.reports.plan_table import plan_table
    from bench.run.api import checked_data_dir
    from bench.spec.overrides import parse_seeds

    result = plan_grid(
        grid,
        target,
        results_dir=results_dir,
        data_dir=checked_data_dir(data_dir),
        model=model,
        overrides=sets,
        seeds=None if seeds is None else parse_seeds(seeds),
        plugins=plugins,
    ).as_json()
    if as_json:
        print(json.dumps(result, indent=1))
    else:
        plan_table(result, console)


@app.command()
@results_dir_option
@click.option("--grid", help="one grid; all grids in the store if unset")
@click.option(
    "--intervals/--no-intervals",
    default=None,
    help="show each score's 95% bootstrap interval; kept with the report (later `run`s and "
    "`report`s render it so) [default: as the report was rendered, first off]",
)
def report(results_dir: Path, grid: str | None, intervals: bool | None) -> None:
    """Re-render reports (tables, figures, index.html) from the results database only; the
    options chosen are kept beside each report (options.json)."""
    from bench.reports.report import write_report
    from bench.results.paths import check_path_text, inside
    from bench.results.store import Store
    from bench.run.signals import interrupts_kept

    check_path_text(results_dir, "--results-dir")
    store = Store.open_existing(results_dir)
    grids = [grid] if grid else store.grids()
    store.check_grid(grid)
    inside(results_dir, "reports")
    folders = {name: inside(results_dir, f"reports/{name}") for name in grids}
    for name, out in folders.items():
        with interrupts_kept():
            console.print(f"wrote {write_report(store, name, out, intervals)}", markup=False)
    _say_broken(results_dir, grid)


@app.command()
@results_dir_option
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "csv", "bundle", "model"]),
    default="json",
    show_default=True,
)
@click.option("--grid", help="only this grid")
@click.option("--cell", "cell_id", help="model: the finished cell to export")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="json, csv: the file to write (else stdout); bundle: the file (gzip JSON); model: the "
    "new folder",
)
@click.option(
    "--losses", is_flag=True, help="json, csv: the losses, one row per (cell, kind, step)"
)
def export(
    results_dir: Path,
    format_: str,
    grid: str | None,
    cell_id: str | None,
    out: Path | None,
    losses: bool,
) -> None:
    """The results matrix as rows, one per (cell, split, metric), the columns of
    `bench.load_results` (--losses: the losses frame); (bundle) the
    finished cells with their predictions in one file, a baseline for `bench compare`; or
    (model) one finished cell's trained model as a folder that PEFT, adapters or transformers
    load without the harness."""
    from bench.reports.frame import losses_frame, results_frame
    from bench.reports.rows import rows_text
    from bench.results.store import Store

    if losses and format_ not in ("json", "csv"):
        raise UserError("--losses goes with --format json or csv")
    if (cell_id is not None) != (format_ == "model"):
        raise UserError("--cell ID goes with --format model (and --format model needs it)")
    if format_ == "model":
        from bench.run.export_model import export_model

        if out is None:
            raise UserError("--format model writes a folder: pass --out DIR (a new folder)")
        described = export_model(results_dir, cell_id, out)
        console.print(
            f"wrote {out} ({described['format']}); its README.md has the code that loads it",
            markup=False,
        )
        return
    if format_ == "bundle":
        from bench.results.bundle import write_bundle

        if out is None:
            raise UserError("--format bundle writes a file: pass --out FILE (e.g. NAME.json.gz)")
        out = OutFile().convert(str(out), None, None)
        count = write_bundle(results_dir, out, grid)
        console.print(f"wrote {count} cells to {out} ({out.stat().st_size:,} bytes)", markup=False)
        _say_broken(results_dir, grid)
        return
    store = Store.open_existing(results_dir)
    try:
        store.check_grid(grid)
        frame = (losses_frame if losses else results_frame)(store, grid)
    finally:
        store.close()
    text = rows_text(frame, format_)
    if out is None:
        sys.stdout.write(text)
    else:
        out = OutFile().convert(str(out), None, None)
        partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, out)  # whole or not at all
        console.print(f"wrote {len(frame)} rows to {out}", markup=False)
    _say_broken(results_dir, grid)


def _say_broken(results_dir: Path, grid: str | None) -> None:
    """One line (stderr) per finished cell whose files are missing or changed, once the
    command's work is done (a failure stays one line): reading commands repair nothing, the next
    `run` does."""
    from bench.results.store import Store, broken_cells

    store = Store.open_existing(results_dir)
    try:
        for cell in broken_cells(store, results_dir, grid):
            line = f"broken: {cell.describe()}; the next `run` restores or reruns it"
            console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)
    finally:
        store.close()


@app.command()
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--metric", "metrics", multiple=True, help="only these metrics (repeatable)")
@tolerance_option
@click.option("--fail-on-regression", is_flag=True, help="exit 1 when a metric regresses")
@click.option("--grid", help="only this grid's cells (of each results dir or bundle)")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def compare(
    baseline: Path,
    candidate: Path,
    metrics: tuple[str, ...],
    tolerance: float,
    fail_on_regression: bool,
    grid: str | None,
    as_json: bool,
) -> None:
    """Compare CANDIDATE with BASELINE (results dirs or bundles), cell by cell, with a paired
    bootstrap over test inputs per split and metric; where two or more seeds pair up, one verdict
    over the seeds (mean delta, bootstrap over seeds and test inputs) instead of one per seed."""
    from bench.results.bundle import load_source
    from bench.results.compare import compare_sources

    sources = load_source(baseline, grid), load_source(candidate, grid)
    if as_json:
        result = compare_sources(*sources, metrics, tolerance)
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        result = _compare(*sources, metrics, tolerance, Console())
    if fail_on_regression and result.regressions:
        sys.exit(1)


@app.command("compare-methods")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--metric", "metrics", multiple=True, help="only these metrics (repeatable)")
@click.option("--grid", help="only this grid's cells")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def compare_methods(
    source: Path, metrics: tuple[str, ...], grid: str | None, as_json: bool
) -> None:
    """Each pair of methods in SOURCE (a results dir or a bundle) on the cells they share: the
    difference per task, split and metric with its 95% interval (over seeds and test inputs where
    several seeds pair up) and a verdict: better, same or worse. Reads only."""
    from bench.reports import terminal
    from bench.results.bundle import load_source
    from bench.results.compare import compare_methods as compare_all

    reports = compare_all(load_source(source, grid), metrics)
    if as_json:
        click.echo(json.dumps([report.to_json() for report in reports], indent=1))
        return
    out = Console()
    for report in reports:
        terminal.comparison(report, out, gate=False)


def _compare(
    baseline: ResultsSource,
    candidate: ResultsSource,
    metrics: tuple[str, ...],
    tolerance: float,
    out: Console,
) -> ComparisonReport:
    from bench.reports import terminal
    from bench.results.compare import compare_sources

    result = compare_sources(baseline, candidate, metrics, tolerance)
    terminal.comparison(result, out)
    return result


@app.command("list")
@click.argument(
    "what", type=click.Choice(["tasks", "methods", "metrics", "grids"]), default="tasks"
)
@plugin_option
def list_(what: str, plugins: tuple[str, ...]) -> None:
    """List registered tasks, methods (with whose implementation: bench or a library), metric
    suites (with their metrics), or grid presets."""
    from bench.metrics.suites import SUITES
    from bench.spec.registry import METHODS, TASKS, load_plugins

    load_plugins(plugins)
    if what == "grids":
        from bench.spec.grid import load_grid, preset_names

        for name in preset_names():
            print(f"{name}\t{load_grid(name)[0].description}")
        return
    if what == "metrics":
        for name in SUITES.names():
            suite = SUITES.get(name)
            print(f"{name}\t{', '.join(suite.names())}\t{suite.description}")
        return
    if what == "methods":
        for name in METHODS.names():
            method = METHODS.get(name)
            print(f"{name}\t{method.source}\t{method.description}")
        return
    for name in TASKS.names():
        print(f"{name}\t{getattr(TASKS.get(name), 'description', '')}")


@app.group()
def data() -> None:
    """Official task data: download it, or count what a data dir holds."""


@data.command()
@click.argument("task")
@click.option(
    "--to",
    type=click.Path(path_type=Path),
    help="data dir to fill (default: $BENCH_DATA_DIR or ~/.cache/bench/data)",
)
def download(task: str, to: Path | None) -> None:
    """Fetch TASK's official files and verify their pinned sha256."""
    from bench.data.download import download as fetch
    from bench.data.files import default_data_dir

    target = to or default_data_dir()
    files = fetch(task, target, say=lambda line: console.print(line, highlight=False, markup=False))
    console.print(f"{len(files)} files in {target}; use --data-dir {target}", markup=False)


@data.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="official task files")
@click.option("--task", "tasks", multiple=True, help="only these tasks (repeatable)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def stats(data_dir: Path | None, tasks: tuple[str, ...], as_json: bool) -> None:
    """Inputs and references per task and split; absent files are reported, not counted."""
    from bench.data.stats import all_stats
    from bench.reports import terminal

    _quiet_libraries()
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is not a directory")
    table = all_stats(data_dir, list(tasks) or None)
    if as_json:
        click.echo(json.dumps(table, indent=1))
        return
    terminal.data_stats(table, console)


@app.group("mini-lm")
def mini_lm() -> None:
    """The embedded mini LMs: rebuild the shipped weights from their recipe, or check that the
    recipe reproduces them (both on one CPU thread)."""


def _mini_names(names: tuple[str, ...]) -> list[str]:
    from bench.errors import did_you_mean
    from bench.mini.config import MINI_LMS

    for name in names:
        if name not in MINI_LMS:
            hint = did_you_mean(name, list(MINI_LMS))
            raise UserError(f"unknown mini LM {name!r}; {hint}valid: {', '.join(MINI_LMS)}")
    return list(names) or list(MINI_LMS)


@mini_lm.command("build")
@click.argument("names", nargs=-1)
def mini_lm_build(names: tuple[str, ...]) -> None:
    """Pretrain NAMES (default: all) and replace their shipped weights in the package."""
    from bench.mini.config import shipped_dir
    from bench.mini.lm import build
    from bench.progress import make_progress

    _quiet_libraries()
    for name in _mini_names(names):
        with make_progress(console) as progress:
            folder = build(name, shipped_dir(name), progress)
        console.print(f"{name}: {folder}")


@mini_lm.command("check")
@click.argument("names", nargs=-1)
def mini_lm_check(names: tuple[str, ...]) -> None:
    """Pretrain NAMES (default: all) in a temporary folder and compare with the shipped weights;
    exit 1 when they differ."""
    from bench.mini.lm import check
    from bench.progress import make_progress

    _quiet_libraries()
    differ = False
    for name in _mini_names(names):
        with make_progress(console) as progress:
            differences = check(name, progress)
        console.print(f"{name}: " + ("; ".join(differences) or "reproduced exactly"))
        differ = differ or bool(differences)
    if differ:
        sys.exit(1)


@app.command()
@click.option("--task", required=True, help="the task whose references and metric suite to use")
@click.option(
    "--split",
    help="an eval split of the task (default: every split the file's line count fits; a file of "
    "the full test set, e.g. WebNLG's 1,862 lines, scores each split cut from it)",
)
@click.option("--data-dir", type=click.Path(path_type=Path), help="official task files")
@click.option(
    "--predictions",
    required=True,
    type=click.Path(path_type=Path),
    help="one output per test input, in the task's input order",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@plugin_option
def score(
    task: str,
    split: str | None,
    data_dir: Path | None,
    predictions: Path,
    as_json: bool,
    plugins: tuple[str, ...],
) -> None:
    """Score a predictions file with the task's official metrics and 95% bootstrap intervals."""
    from bench.reports import terminal
    from bench.results.scoring import score_file
    from bench.spec.registry import load_plugins

    load_plugins(plugins)
    result = score_file(task, split, data_dir, predictions)
    if as_json:
        click.echo(json.dumps(result))
    else:
        terminal.scores(result, Console())


@app.command()
@click.option("--cell", "cell_id", help="a finished cell's id: decode with its trained method")
@click.option("--model", help="or a bare model (mini, random:ARCH, a hub id or path)")
@click.option(
    "--inputs",
    required=True,
    type=click.Path(path_type=Path),
    help="one input a line: a task source for --cell, a raw prompt for --model",
)
@results_dir_option
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="decode.KEY=VALUE",
    help="change a decode setting (repeatable), e.g. decode.rule=authors decode.num_beams=3",
)
@click.option("--json", "as_json", is_flag=True, help="JSONL: input, output, token ids, score")
@plugin_option
def predict(
    cell_id: str | None,
    model: str | None,
    inputs: Path,
    results_dir: Path,
    sets: tuple[str, ...],
    as_json: bool,
    plugins: tuple[str, ...],
) -> None:
    """Decode new inputs with a stored cell's method or a bare model; one output a line (a
    newline inside an output is printed as a space; --json keeps it). Writes nothing."""
    from bench.run.predict import predict_with_cell, predict_with_model, read_inputs
    from bench.spec.registry import load_plugins

    if (cell_id is None) == (model is None):
        raise UserError("pass either --cell ID (a finished cell) or --model SPEC (a bare model)")
    load_plugins(plugins)
    lines = read_inputs(inputs)
    if cell_id is not None:
        predictions = predict_with_cell(results_dir, cell_id, lines, sets)
    else:
        predictions = predict_with_model(model, lines, sets)
    for p in predictions:
        click.echo(json.dumps(asdict(p)) if as_json else " ".join(p.output.splitlines()))


@app.command()
@click.option(
    "--model",
    default="mini",
    show_default=True,
    help="mini, mini-tiny, gpt2, gpt2-medium, gpt2-large, bart-base, bart-large",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@plugin_option
def params(model: str, as_json: bool, plugins: tuple[str, ...]) -> None:
    """Trained and stored parameters of every method (default settings), from the config only."""
    from bench.reports import terminal
    from bench.spec.param_counts import model_spec, shipped_table, with_rows
    from bench.spec.registry import load_plugins

    _quiet_libraries()
    load_plugins(plugins)
    table, stale = shipped_table(model)
    if stale:  # a plugin's method, changed defaults: counted here (importing torch)
        from bench.engine.params import parameter_table

        name = model_spec(model).removeprefix("random:")
        table = with_rows(table, parameter_table(name, stale))
    print(json.dumps(table, indent=1) if as_json else terminal.parameters(table))


# --- perf: the measuring tools (bench.perf) ---------------------------------------------------

# The spellings before `perf` had subcommands (kept for one release): a flag that picked the
# benchmark -> its subcommand. `--device` stays an option of `perf device`.
_OLD_PERF_FLAGS = {"--overhead": "overhead", "--metrics": "metrics", "--executors": "executors"}
_DEVICE_ONLY = ("--model", "--peak-tflops", "--steps", "--new-tokens")
_PERF_NOTE = "bench.perf.deprecated"


def _option_given(args: list[str], names: tuple[str, ...]) -> bool:
    return any(arg.split("=", 1)[0] in names for arg in args)


def _perf_subcommand(args: list[str]) -> list[str]:
    """An old `perf` spelling (no subcommand: flags only, or nothing) as a subcommand's."""
    if _option_given(args, ("--device",)):
        return ["device", *args]
    if _option_given(args, _DEVICE_ONLY):
        raise UserError(
            "--model, --peak-tflops, --steps and --new-tokens go with --device cuda|cpu "
            "(now: python -m bench perf device)"
        )
    for flag, command in _OLD_PERF_FLAGS.items():
        if flag in args:
            return [command, *(arg for arg in args if arg != flag)]
    return ["grid", *args]


class _PerfCommand(click.Command):
    """A `perf` subcommand that, run by an old spelling, ends with that spelling's note: after
    the results, where a long run's log does not bury it, and never beside an error line."""

    def invoke(self, ctx: click.Context) -> Any:
        result = super().invoke(ctx)
        note = ctx.parent.meta.pop(_PERF_NOTE, None) if ctx.parent else None
        if note:
            click.echo(note, err=True)
        return result


class _PerfGroup(click.Group):
    """`perf` with a subcommand per benchmark; the old flag spellings (`perf`, `perf --overhead`,
    `perf --device cuda`, ...) still run, with a one-line note on stderr naming the new one."""

    command_class = _PerfCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else "-"
        if first.startswith("-") and first not in ctx.help_option_names:
            new = _perf_subcommand(args)
            was, now = shlex.join(["bench", "perf", *args]), shlex.join(["bench", "perf", *new])
            ctx.meta[_PERF_NOTE] = f"note: '{was}' is deprecated; use '{now}'"
            args = new
        return super().parse_args(ctx, args)


@app.group(cls=_PerfGroup)
def perf() -> None:
    """Speed benchmarks: a grid's wall time, the training loop's overhead, the metric suite,
    the executors, and every method's throughput on a device against plain transformers + PEFT."""


_perf_out = click.option("--out", type=OutFile(), help="also write the JSON here")
_perf_json = click.option("--json", "as_json", is_flag=True, help="print JSON, not a summary")


def _perf_print(text: str, summary: str, out: Path | None) -> None:
    """The summary (or the JSON) to stdout; the JSON to `out` too."""
    print(summary or text)
    if out is not None:
        out.write_text(text + "\n")


@perf.command("grid", short_help="A grid's wall time: cold, warm, rerun")
@click.option("--grid", default="mini", show_default=True, help="preset name or YAML path")
@click.option("--warm-only", is_flag=True, help="skip the cold run (keep the model cache)")
@_perf_out
def perf_grid(grid: str, warm_only: bool, out: Path | None) -> None:
    """A grid's wall time: cold (empty model cache), warm, and a rerun that skips every cell."""
    from bench.perf.grid import benchmark
    from bench.spec.grid import load_grid

    load_grid(grid)  # bad input fails here, before minutes of work
    runs = "warm, rerun" if warm_only else "cold, warm, rerun"
    console.print(f"benchmarking grid {grid}: {runs}", markup=False)
    _perf_print(json.dumps(benchmark(grid, cold=not warm_only), indent=2), "", out)


@perf.command("overhead", short_help="The training loop against a plain PyTorch loop")
@_perf_json
@_perf_out
def perf_overhead(as_json: bool, out: Path | None) -> None:
    """Training tokens/s: the harness's loop against a plain PyTorch loop (60 fine-tuning steps
    of mini-e2e, best of 3 rounds), which must end with the same weights bit for bit."""
    from bench.perf.overhead import overhead_benchmark, overhead_lines

    console.print("timing 60 fine-tuning steps of mini-e2e: the harness's loop, a plain loop")
    result = overhead_benchmark()
    _perf_print(json.dumps(result, indent=2), "" if as_json else overhead_lines(result), out)


@perf.command("metrics", short_help="The E2E metric suite and `bench score`")
@_perf_out
def perf_metrics(out: Path | None) -> None:
    """Time the E2E metric suite on 630 outputs, then `bench score` on E2E TGen and on WebNLG's
    1,862-line file (seen, unseen, all), each in a process of its own."""
    from bench.perf.metrics import metrics_benchmark

    console.print("timing the e2e metric suite on the 630 TGen outputs, then bench score")
    _perf_print(json.dumps(metrics_benchmark(), indent=2), "", out)


@perf.command("executors", short_help="A grid on the local executor and on Ray")
@click.option("--grid", default="mini", show_default=True, help="preset name or YAML path")
@_perf_out
def perf_executors(grid: str, out: Path | None) -> None:
    """Time a grid: the local executor on all cores, then on one thread, then Ray."""
    from bench.perf.executors import executor_benchmark
    from bench.spec.grid import load_grid

    load_grid(grid)
    console.print(f"benchmarking grid {grid}: local on all cores, on 1 thread, Ray", markup=False)
    _perf_print(json.dumps(executor_benchmark(grid), indent=2), "", out)


@perf.command("contention", short_help="A cell beside a busy process, against a quiet machine")
@click.option("--grid", default="mini", show_default=True, help="preset name or YAML path")
@_perf_out
def perf_contention(grid: str, out: Path | None) -> None:
    """One cell of the grid on a quiet machine and beside one busy process, with the default
    executor (one thread per cell) and the local one on all cores: the slowdown of each."""
    from bench.perf.contention import contention_benchmark

    console.print(f"timing one cell of {grid}: quiet and beside a busy process", markup=False)
    _perf_print(json.dumps(contention_benchmark(grid), indent=2), "", out)


@perf.command("gate", short_help="The regression gate's false alarms and power, simulated")
@click.option(
    "--pool", "pools", multiple=True, required=True, type=click.Path(path_type=Path),
    help="a results directory of the grid run with 10+ seeds (repeatable: e.g. 1 and 2 threads)",
)  # fmt: skip
@click.option("--method", default="prefix", show_default=True, help="the method to weaken")
@click.option(
    "--weak", type=click.Path(path_type=Path),
    help="a results directory of the same grid with the method weakened (e.g. max_steps / 10)",
)  # fmt: skip
@click.option("--draws", type=click.IntRange(min=10, max=100_000), default=400, show_default=True)
@_perf_json
@_perf_out
def perf_gate(
    pools: tuple[Path, ...],
    method: str,
    weak: Path | None,
    draws: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """The gate's false-alarm rate on unchanged code and its power against injected regressions,
    from simulated `--check` runs of 3 and 5 seeds drawn from the pools."""
    from bench.perf.gate import gate_benchmark, gate_lines

    result = gate_benchmark(pools, method, weak, draws=draws)
    _perf_print(json.dumps(result, indent=2), "" if as_json else gate_lines(result), out)


@perf.command("device", short_help="Every method against plain transformers + PEFT")
@click.option(
    "--device", type=click.Choice(["cuda", "cpu"]), default="cuda", show_default=True,
    help="where to measure",
)  # fmt: skip
@click.option("--model", help="the model (default: random:gpt2-medium on cuda, mini on cpu)")
@click.option(
    "--peak-tflops",
    type=FiniteFloat(min=0, min_open=True),
    help="the device's peak, for MFU (default: a GPU's datasheet peak; CPU: none)",
)
@click.option("--steps", type=click.IntRange(min=1), help="timed training steps per row")
@click.option("--new-tokens", type=click.IntRange(min=1), help="new tokens per input")
@_perf_json
@_perf_out
def perf_device(device: str, as_json: bool, out: Path | None, **options: Any) -> None:
    """Every method's training and decoding tokens/s, MFU and peak memory on this device, the
    harness against plain transformers + PEFT (each method's registered plain equivalent)."""
    _quiet_libraries()
    from bench.perf.device import throughput_benchmark, throughput_table

    result = throughput_benchmark(device, **options, log=console.print)
    _perf_print(json.dumps(result, indent=2), "" if as_json else throughput_table(result), out)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app.main(prog_name="python -m bench", standalone_mode=False)
    except UserError as error:
        _error_line(str(error))
    except click.exceptions.Abort:
        sys.exit(130)
    except click.UsageError as error:  # a bad option or command: one line, with where to look
        command = error.ctx.command_path if error.ctx else "python -m bench"
        _error_line(f"{error.format_message()} (see `{command} --help`)")
    except click.ClickException as error:
        _error_line(error.format_message())
    except (OSError, sqlite3.DatabaseError) as error:
        failure = _environment_failure(error)
        if failure is None:
            raise
        _error_line(failure, status=1)


KEPT = "finished cells are kept"


def _environment_failure(error: OSError | sqlite3.DatabaseError) -> str | None:
    """What the machine did to a run (a full disk, an I/O error, a store damaged while it ran),
    as one line for exit status 1; None for anything else, which is a bug and traces back."""
    if isinstance(error, OSError):
        if error.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS):
            return None
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror}{where}: free space or fix the disk, and rerun ({KEPT})"
    code = getattr(error, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return f"the results database cannot grow (disk full): free space and rerun ({KEPT})"
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR):
        return f"the results database is damaged ({error}): move it away or restore it, and rerun"
    return None


def _error_line(message: str, status: int = 2) -> NoReturn:
    """One line naming the problem and the fix (the user's text in it printed as is, never read
    as markup); exit status 2 for bad input, 1 for a run the machine failed."""
    console.print(
        f"[red]error:[/] {escape(' '.join(message.split()))}", highlight=False, soft_wrap=True
    )
    sys.exit(status)
