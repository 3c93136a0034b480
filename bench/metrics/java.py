"""Running the official Java tools (METEOR 1.5, the Stanford PTB tokenizer) that pycocoevalcap
ships, through pipes: one JVM per corpus and tool, never one per input.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.metrics import MetricUnavailable

JAVA_FIX = "install a Java runtime (8+) on PATH, e.g. `apt-get install default-jre-headless`"


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
                [java(), *args], stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, check=False
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
