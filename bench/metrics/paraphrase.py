"""METEOR's English paraphrase table, cut down to what one corpus can use.

METEOR 1.5 spends most of its start-up (10-15 s of CPU) building a trie of its 5.3 million
paraphrase pairs. A pair can only ever match when every word of both of its phrases occurs in the
corpus, as METEOR normalizes and lowercases it: the aligner looks words up in the table, and a
word missing from it matches nothing. So each corpus gets a table of exactly those pairs, in the
original order (the aligner's candidate order), and the jar loads that instead (`-a`) in well
under a second, with identical results.

The word ids of the full table are parsed once (about 20 s, then cached under $BENCH_CACHE); the
corpus vocabulary comes from the jar's own normalizer, so it is exactly what the aligner sees.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, reduce
from pathlib import Path

import numpy as np

from bench.metrics.java import coco_file, run_jar

ENTRY_LINES = 3  # a probability line (which the jar ignores), a phrase, its paraphrase
CACHE_VERSION = 2


@dataclass(frozen=True)
class ParaphraseIndex:
    """Every phrase of the table as word ids, grouped by length: `groups[n]` holds the indices of
    the phrases of n words and their word ids [phrases, n]. Entry e pairs phrase 2e (looked up)
    with phrase 2e + 1 (its paraphrase)."""

    vocab: list[str]
    n_phrases: int
    groups: dict[int, tuple[np.ndarray, np.ndarray]]

    def subset(self, words: set[str]) -> np.ndarray:
        """Indices of the entries whose phrases use only these words, in table order."""
        known = np.fromiter((w in words for w in self.vocab), dtype=bool, count=len(self.vocab))
        usable = np.ones(self.n_phrases, dtype=bool)  # an empty phrase has no unknown word
        for phrases, ids in self.groups.values():
            usable[phrases] = known[ids].all(axis=1)
        return np.flatnonzero(usable[0::2] & usable[1::2])

    def write(self, entries: np.ndarray, path: Path) -> None:
        """The table of these entries, in the jar's format (gzip, three lines an entry)."""
        wanted = np.zeros(self.n_phrases, dtype=bool)
        wanted[2 * entries] = wanted[2 * entries + 1] = True
        vocab = np.array(self.vocab, dtype=object)
        lines = np.full(self.n_phrases, "", dtype=object)
        for phrases, ids in self.groups.values():
            rows = wanted[phrases]
            words = vocab[ids[rows]]
            lines[phrases[rows]] = reduce(lambda a, b: a + " " + b, words.T)
        text = "".join(
            f"0\n{a}\n{b}\n"
            for a, b in zip(lines[2 * entries], lines[2 * entries + 1], strict=True)
        )
        path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=1))


def corpus_table(texts: Sequence[str], folder: Path) -> Path:
    """A paraphrase table with every pair usable on these texts (one per line, as sent to the
    jar), written into `folder`."""
    jar = coco_file("meteor", "meteor-1.5.jar")
    args = ["-Dfile.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8", "-cp", jar.name]
    normalized = run_jar(
        [*args, "edu.cmu.meteor.util.Normalizer", "en", "true"], list(texts), jar.parent
    )
    words = {w for line in normalized for w in line.lower().split(" ")}
    words |= {w.lower() for line in normalized for w in line.split(" ")}
    index = _index()
    path = folder / "paraphrase-corpus.gz"
    index.write(index.subset(words), path)
    return path


@cache
def _index() -> ParaphraseIndex:
    table = coco_file("meteor", "data", "paraphrase-en.gz")
    digest = hashlib.sha256(table.read_bytes()).hexdigest()[:16]
    root = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))
    folder = root / "meteor" / f"paraphrase-en-{digest}-v{CACHE_VERSION}"
    if not (folder / "vocab.txt").is_file():
        _build(table, folder)
    groups = {}
    for path in sorted(folder.glob("phrases-*.npy")):
        n = int(path.stem.split("-")[1])
        groups[n] = (np.load(path), np.load(folder / f"ids-{n}.npy"))
    return ParaphraseIndex(
        vocab=(folder / "vocab.txt").read_text(encoding="utf-8").split("\n"),
        n_phrases=int(np.load(folder / "n_phrases.npy")),
        groups=groups,
    )


def _build(table: Path, folder: Path) -> None:
    """Parse the table once into word ids; written to a temporary folder, then renamed."""
    with gzip.open(table, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    n = len(lines) // ENTRY_LINES * ENTRY_LINES
    index: dict[str, int] = {}
    ids, bounds = array("i"), array("i", [0])
    for phrase, paraphrase in zip(lines[1:n:ENTRY_LINES], lines[2:n:ENTRY_LINES], strict=True):
        # The jar splits phrases with a StringTokenizer; the table uses single spaces only.
        ids.extend(index.setdefault(w, len(index)) for w in phrase.split())
        bounds.append(len(ids))
        ids.extend(index.setdefault(w, len(index)) for w in paraphrase.split())
        bounds.append(len(ids))
    flat, starts = np.frombuffer(ids, dtype=np.int32), np.frombuffer(bounds, dtype=np.int32)
    lengths = np.diff(starts)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    for length in np.unique(lengths[lengths > 0]).tolist():
        phrases = np.flatnonzero(lengths == length).astype(np.int32)
        np.save(staging / f"phrases-{length}.npy", phrases)
        np.save(staging / f"ids-{length}.npy", flat[starts[phrases][:, None] + np.arange(length)])
    np.save(staging / "n_phrases.npy", np.int64(len(lengths)))
    (staging / "vocab.txt").write_text("\n".join(index), encoding="utf-8")
    try:
        staging.rename(folder)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
