"""Running the official Java tools (METEOR 1.5, the Stanford PTB tokenizer) that pycocoevalcap
ships, through files: one JVM per corpus and tool, or a few side by side on a large corpus
(`run_jar_parts`), never one per input. Answers to a test set's references are kept between runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.cache import cache_root
from bench.metrics import MetricUnavailable

JAVA_FIX = "install a Java runtime (8+) on PATH, e.g. `apt-get install default-jre-headless`"
# Each JVM here runs for seconds: the client compiler alone and the serial collector cut its CPU
# time by half or more (the server compiler's work never pays back), with identical output.
FAST_START = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData"]
MAX_PARTS = 4  # JVMs side by side for one tool run
KEEP_AT_LEAST = 200  # lines of references whose answers are kept between runs


def java() -> str:
    """The `java` executable, or `MetricUnavailable` with the one-line fix."""
    found = shutil.which("java")
    if found is None:
        raise MetricUnavailable(f"needs Java, which is not on PATH: {JAVA_FIX}")
    return found


def coco_file(*parts: str) -> Path:
    """A file shipped inside pycocoevalcap (its jars and METEOR's paraphrase table)."""
    import pycocoevalcap.meteor.meteor as meteor_module

    path = Path(meteor_module.__file__).parent.parent.joinpath(*parts)
    if not path.is_file():
        raise MetricUnavailable(
            f"pycocoevalcap has no {'/'.join(parts)}: reinstall it (`pip install pycocoevalcap`)"
        )
    return path


def run_jar(args: list[str], lines: list[str], cwd: Path) -> list[str]:
    """Run one JVM on `lines` (UTF-8, one per line) and return its output lines.

    Input and output go through temporary files, not pipes: suites run metrics in threads, and
    a thread relaying megabytes through a pipe would wait for the GIL at every chunk while
    another thread computes (the convoy effect made that 20 times slower).
    """
    with (
        tempfile.TemporaryFile() as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        stdin.write("".join(line + "\n" for line in lines).encode("utf-8"))
        stdin.seek(0)
        try:
            code = subprocess.run(
                [java(), *FAST_START, *args],
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                check=False,
            ).returncode
        except OSError as error:
            raise MetricUnavailable(f"Java could not start ({error}): {JAVA_FIX}") from None
        if code != 0:  # a crashed scorer makes its metrics unavailable, never the cell failed
            stderr.seek(0)
            error = stderr.read().decode("utf-8", "replace").strip().splitlines()
            last = error[-1] if error else "no output"
            raise MetricUnavailable(f"the Java scorer failed (exit {code}: {last})")
        stdout.seek(0)
        return stdout.read().decode("utf-8").split("\n")


def run_jar_parts(
    args: list[str], lines: list[str], cwd: Path, lines_per_part: int, kept: int = 0
) -> list[str]:
    """`run_jar` for a tool that answers each input line with one line, on its own (a line it
    answers with nothing reads as ""): consecutive parts of the lines go to JVMs side by side.

    The answers to the first `kept` lines (a corpus' references, the same from run to run) are
    kept on disk, per tool command and block of lines, and read back instead of rerun; a block
    of fewer than `KEEP_AT_LEAST` lines is not worth a file.
    """
    path = _kept_path(args, cwd, lines[:kept]) if kept >= KEEP_AT_LEAST else None
    known = _read_kept(path, kept) if path else None
    if known is not None:
        return known + _in_parts(args, lines[kept:], cwd, lines_per_part)
    answers = _in_parts(args, lines, cwd, lines_per_part)
    if path:
        _write_kept(path, answers[:kept])
    return answers


def _in_parts(args: list[str], lines: list[str], cwd: Path, lines_per_part: int) -> list[str]:
    """As many parts as have `lines_per_part` lines (what pays for a JVM's start), at most one
    per available core; the answers joined in order."""
    if not lines:
        return []
    count = max(1, min(cores(), MAX_PARTS, len(lines) // lines_per_part))
    size = -(-len(lines) // count)
    parts = [lines[start : start + size] for start in range(0, len(lines), size)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        answers = list(pool.map(lambda part: _answers(run_jar(args, part, cwd), part), parts))
    return [line for answer in answers for line in answer]


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _answers(out: list[str], lines: list[str]) -> list[str]:
    """One answer per line: the tool may print nothing for trailing empty lines."""
    return [*out[: len(lines)], *[""] * (len(lines) - len(out))]


def _kept_path(args: list[str], cwd: Path, lines: list[str]) -> Path:
    """The file of a tool command's answers to a block of lines: named after the command, the
    size and time of each jar it names, and the lines."""
    jars = [cwd / a for a in args if a.endswith(".jar")]
    stamps = [(str(j), j.stat().st_size, j.stat().st_mtime_ns) for j in jars if j.is_file()]
    key = json.dumps([args, str(cwd), stamps, lines], ensure_ascii=False).encode("utf-8")
    return cache_root() / "java-answers" / f"{hashlib.sha256(key).hexdigest()[:32]}.txt"


def _read_kept(path: Path, count: int) -> list[str] | None:
    try:
        answers = path.read_text(encoding="utf-8").split("\n")
    except OSError:
        return None
    return answers if len(answers) == count else None


def _write_kept(path: Path, answers: list[str]) -> None:
    """Written under a temporary name, then renamed: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    staging.write_text("\n".join(answers), encoding="utf-8")
    staging.replace(path)
