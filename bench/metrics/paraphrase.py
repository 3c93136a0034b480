"""METEOR's English paraphrase table, cut down to what one corpus can use.

METEOR 1.5 spends most of its start-up (10-15 s of CPU) building a trie of its 5.3 million
paraphrase pairs. A pair can only ever match when both of its phrases occur, word for word and in
order, in the corpus as METEOR normalizes and lowercases it: the aligner walks the trie along
consecutive words of one sentence and looks for each paraphrase at consecutive words of the other
(`ParaphraseMatcher`). So each corpus gets a table of exactly those pairs (a few thousand), in
the original order (the aligner's candidate order), and the jar loads that instead (`-a`) in a
fraction of a second, with identical results.

The word ids of the full table are parsed once (about 20 s, then cached under $BENCH_CACHE), with
a sorted 64-bit hash of every phrase, so a corpus finds its phrases by binary search; the corpus'
word sequences come from the jar's own normalizer, so they are exactly what the aligner sees.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
from array import array
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from bench.cache import cache_root
from bench.metrics.java import coco_file, run_jar_parts

ENTRY_LINES = 3  # a probability line (which the jar ignores), a phrase, its paraphrase
CACHE_VERSION = 2
NORMALIZER_LINES_PER_JVM = 2000  # lines whose normalizing pays for a JVM's start


@dataclass(frozen=True)
class PhraseGroup:
    """The phrases of one length n: `phrases[row]` is a phrase's index in the table and `ids[row]`
    its word ids; `keys` are the sorted `_keys` of `ids` and `order` their rows, for lookups."""

    phrases: np.ndarray
    ids: np.ndarray
    keys: np.ndarray
    order: np.ndarray

    def rows(self, grams: np.ndarray) -> np.ndarray:
        """The rows whose key is one of `grams` (every row of a shared key)."""
        low = np.searchsorted(self.keys, grams, side="left")
        counts = np.searchsorted(self.keys, grams, side="right") - low
        ends = np.cumsum(counts)
        return self.order[np.repeat(low - ends + counts, counts) + np.arange(ends[-1])]


@dataclass(frozen=True)
class ParaphraseIndex:
    """Every phrase of the table as word ids, grouped by length (`groups[n]`); the phrases of no
    words are `empty`. Entry e pairs phrase 2e (looked up) with phrase 2e + 1 (its paraphrase)."""

    vocab: list[str]
    n_phrases: int
    groups: dict[int, PhraseGroup]
    empty: np.ndarray
    word_ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "word_ids", {w: i for i, w in enumerate(self.vocab)})

    def usable(self, lines: Sequence[Sequence[str]]) -> dict[int, str]:
        """The entries whose two phrases both occur in these tokenized lines, each as consecutive
        words of one line (in table order), with the text of their phrases."""
        grams = _ngram_keys(lines, self.word_ids, max(self.groups, default=0))
        found = {n: group.rows(grams[n]) for n, group in self.groups.items() if len(grams[n])}
        usable = np.zeros(self.n_phrases, dtype=bool)
        usable[self.empty] = True  # an empty phrase has no missing word
        for n, rows in found.items():
            usable[self.groups[n].phrases[rows]] = True
        entries = np.flatnonzero(usable[0::2] & usable[1::2])
        wanted = np.zeros(self.n_phrases, dtype=bool)
        wanted[2 * entries] = wanted[2 * entries + 1] = True
        texts = dict.fromkeys(np.flatnonzero(wanted).tolist(), "")  # empty phrases stay ""
        for n, rows in found.items():
            group = self.groups[n]
            rows = _distinct(rows[wanted[group.phrases[rows]]])
            for phrase, words in zip(
                group.phrases[rows].tolist(), group.ids[rows].tolist(), strict=True
            ):
                texts[phrase] = " ".join(self.vocab[w] for w in words)
        return {e: f"{texts[2 * e]}\n{texts[2 * e + 1]}" for e in entries.tolist()}


_HASH = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the n-gram hash
KEYS_VERSION = 1  # of `_keys`: the lookup files are named after it


def _keys(ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row of word ids (wrapping arithmetic): a collision can only keep a
    pair that cannot match, never drop one that can."""
    keys = np.zeros(len(ids), dtype=np.uint64)
    for column in ids.T.astype(np.uint64):
        keys = keys * _HASH + column + np.uint64(1)
    return keys


def _distinct(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (`np.unique` imports numpy.ma, a tenth of a second)."""
    values = np.sort(values)
    return values[np.concatenate(([True], values[1:] != values[:-1]))] if len(values) else values


def _ngram_keys(
    lines: Sequence[Sequence[str]], word_ids: dict[str, int], max_n: int
) -> dict[int, np.ndarray]:
    """The `_keys` of every run of n table words (n <= max_n) in the lines, per n. Lines are
    joined with a separator id (-1), which, like a word not in the table, ends every run."""
    flat = np.array(
        [i for ws in lines for i in (*(word_ids.get(w, -1) for w in ws), -1)], dtype=np.int64
    )
    keys, valid = np.zeros(len(flat), dtype=np.uint64), np.ones(len(flat), dtype=bool)
    grams = {}
    for n in range(1, max_n + 1):
        last = flat[n - 1 :]  # the n-th word of the run starting at each position
        keys = keys[: len(last)] * _HASH + last.astype(np.uint64) + np.uint64(1)
        valid = valid[: len(last)] & (last >= 0)
        grams[n] = _distinct(keys[valid])
    return grams


def corpus_table(texts: Sequence[str], folder: Path, kept: int = 0) -> tuple[Path, dict[str, str]]:
    """A paraphrase table with every pair usable on these texts (as sent to the jar), written
    into `folder`, and each text as the jar's normalizer writes it (English, punctuation kept:
    what `-norm` makes of it). The first `kept` texts (references) are normalized once and
    kept; the index loads while the normalizer runs."""
    jar = coco_file("meteor", "meteor-1.5.jar")
    args = ["-Dfile.encoding=UTF-8", "-Dsun.stdout.encoding=UTF-8", "-cp", jar.name]
    block = dict.fromkeys(texts[:kept])  # each distinct line once
    distinct = [*block, *(t for t in dict.fromkeys(texts[kept:]) if t not in block)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        index = pool.submit(_index)
        normalized = run_jar_parts(
            [*args, "edu.cmu.meteor.util.Normalizer", "en", "true"],
            distinct,
            jar.parent,
            NORMALIZER_LINES_PER_JVM,
            kept=len(block),
        )
        lines = {tuple(line.split(" ")) for line in normalized}
        lines |= {tuple(line.lower().split(" ")) for line in normalized}
        entries = index.result().usable(list(lines))
    path = folder / "paraphrase-corpus.gz"
    text = "".join(f"0\n{pair}\n" for pair in entries.values())
    path.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=1))
    return path, dict(zip(distinct, normalized, strict=True))


@cache
def _index() -> ParaphraseIndex:
    table = coco_file("meteor", "data", "paraphrase-en.gz")
    folder = cache_root() / "meteor" / f"paraphrase-en-{_digest(table)}-v{CACHE_VERSION}"
    if not (folder / "vocab.txt").is_file():
        _build(table, folder)
    return load_index(folder)


def load_index(folder: Path) -> ParaphraseIndex:
    """The index `_build` wrote into `folder`, with its lookup files (made once if missing)."""
    lengths = sorted(int(path.stem.split("-")[1]) for path in folder.glob("phrases-*.npy"))
    if not (folder / f"lookup-v{KEYS_VERSION}.done").is_file():
        _build_lookup(folder, lengths)
    groups = {
        n: PhraseGroup(  # memory-mapped: a corpus reads a few pages of each
            *(np.load(folder / f"{name}-{n}.npy", mmap_mode="r") for name in ("phrases", "ids")),
            *(
                np.load(folder / f"{name}-v{KEYS_VERSION}-{n}.npy", mmap_mode="r")
                for name in ("keys", "order")
            ),
        )
        for n in lengths
    }
    return ParaphraseIndex(
        vocab=(folder / "vocab.txt").read_text(encoding="utf-8").split("\n"),
        n_phrases=int(np.load(folder / "n_phrases.npy")),
        groups=groups,
        empty=np.load(folder / f"empty-v{KEYS_VERSION}.npy"),
    )


def _digest(table: Path) -> str:
    """The table's SHA-256 (16 hex digits), which names its index. Hashing 62 MB costs a tenth
    of a second, so it is remembered with the file's size and time and redone when they change."""
    stat = table.stat()
    stamp = f"{table} {stat.st_size} {stat.st_mtime_ns}"
    remembered = cache_root() / "meteor" / "paraphrase-en.digest"
    try:
        known, digest = remembered.read_text(encoding="utf-8").rsplit(" ", 1)
        if known == stamp:
            return digest
    except (OSError, ValueError):
        pass
    digest = hashlib.sha256(table.read_bytes()).hexdigest()[:16]
    remembered.parent.mkdir(parents=True, exist_ok=True)
    staging = remembered.with_name(f"{remembered.name}.{os.getpid()}.tmp")
    staging.write_text(f"{stamp} {digest}", encoding="utf-8")
    staging.replace(remembered)
    return digest


def _build_lookup(folder: Path, lengths: list[int]) -> None:
    """Once per index (a second or two): each length's phrase keys, sorted, and the phrases of
    no words. Each file is written under a temporary name, then renamed."""
    n_phrases = int(np.load(folder / "n_phrases.npy"))
    empty = np.ones(n_phrases, dtype=bool)
    for n in lengths:
        empty[np.load(folder / f"phrases-{n}.npy")] = False
        keys = _keys(np.load(folder / f"ids-{n}.npy"))
        order = np.argsort(keys, kind="stable").astype(np.int32)
        _save(folder / f"keys-v{KEYS_VERSION}-{n}.npy", keys[order])
        _save(folder / f"order-v{KEYS_VERSION}-{n}.npy", order)
    _save(folder / f"empty-v{KEYS_VERSION}.npy", np.flatnonzero(empty))
    (folder / f"lookup-v{KEYS_VERSION}.done").touch()


def _save(path: Path, array: np.ndarray) -> None:
    staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with staging.open("wb") as f:
        np.save(f, array)
    staging.replace(path)


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
