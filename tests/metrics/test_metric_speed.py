"""The fast paths of `bench score` compute exactly what the code they replace computed.

tercom's shift search (sacrebleu's `lib_ter`), coco's ROUGE-L and CIDEr-D (pycocoevalcap) and
mteval's 13a tokenizer (sacrebleu) against the originals, bit for bit; bootstrap sums of
whole-number statistics; METEOR's corpus paraphrase table against a brute-force count; the JVM
answers kept between runs; NIST statistics that no longer depend on the string hash seed; and
the imports and file reads of `bench score`.
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge, my_lcs
from sacrebleu.metrics.lib_ter import translation_edit_rate
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from bench.metrics import java
from bench.metrics.bootstrap import _counted_totals
from bench.metrics.coco import CiderD, CocoRougeL, lcs_length
from bench.metrics.mteval import tokenize
from bench.metrics.paraphrase import _build, load_index
from bench.metrics.ter import edits
from bench.metrics.text import ascii_lower
from tests.runs import fresh_python

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "red", "big", "ran"]


def sentences(rng: random.Random, count: int, longest: int, vocabulary: int = 6) -> list[str]:
    return [
        " ".join(rng.choice(WORDS[:vocabulary]) for _ in range(rng.randint(0, longest)))
        for _ in range(count)
    ]


def test_compiled_tercom_counts_the_edits_of_sacrebleus_tercom_port():
    """Few distinct words make many matching runs, so the shift search ranks many shifts."""
    rng = random.Random(0)
    pairs = list(zip(sentences(rng, 1000, 25), sentences(rng, 1000, 25), strict=True))
    pairs += zip(sentences(rng, 4, 70, 10), sentences(rng, 4, 70, 10), strict=True)
    for hyp, ref in pairs:
        h, r = hyp.split(), ref.split()
        assert edits(h, r) == (translation_edit_rate(h, r)[0] if r else len(h)), (hyp, ref)


def test_rouge_l_and_cider_d_equal_pycocoevalcap_bit_for_bit():
    rng = random.Random(1)
    hyps = sentences(rng, 300, 25, 10)
    refs = [sentences(rng, rng.randint(1, 6), 25, 10) for _ in hyps]
    assert CocoRougeL().segment_scores(hyps, refs) == [
        float(Rouge().calc_score([h], r)) for h, r in zip(hyps, refs, strict=True)
    ]
    _, theirs = Cider().compute_score(dict(enumerate(refs)), {i: [h] for i, h in enumerate(hyps)})
    assert CiderD().segment_scores(hyps, refs) == [float(s) for s in theirs]
    for a, b in zip(sentences(rng, 500, 40), sentences(rng, 500, 40), strict=True):
        assert lcs_length(a.split(), b.split()) == my_lcs(a.split(), b.split())


def test_mteval_tokenizer_equals_sacrebleus_13a():
    rng = random.Random(2)
    pieces = ["a", "B", "7", " ", ".", ",", "-", "\n", "\t", "'", "é", "&quot;", "&amp;", "&"]
    pieces += ["<skipped>", "$", "/", "{", "~", "`", "@", "(", "\u00a0", "É"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(20000)]
    texts += ["3.5, 1,000 and 2-3 a-\nb", "x&lt;y&gt;z", "U.S.-based, (cheap)!"]
    theirs = Tokenizer13a()
    assert [tokenize(t) for t in texts] == [theirs(ascii_lower(t)).split() for t in texts]


def test_nist_statistics_do_not_depend_on_the_string_hash_seed():
    """The clipped matches were summed in set order, which the hash seed changes."""
    code = textwrap.dedent(
        """
        import hashlib, random
        from bench.metrics.mteval import MtevalNist
        rng = random.Random(0)
        words = [f"w{i}" for i in range(30)]
        def line(): return " ".join(rng.choice(words) for _ in range(rng.randint(5, 20)))
        refs = [[line() for _ in range(rng.randint(1, 6))] for _ in range(300)]
        stats = MtevalNist().segment_stats([line() for _ in refs], refs)
        print(hashlib.sha256(stats.tobytes()).hexdigest())
        """
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(digests) == 1


def test_bootstrap_totals_of_whole_numbers_equal_the_row_sums():
    rng = np.random.default_rng(3)
    stats = rng.integers(0, 50, size=(300, 7)).astype(np.float64)
    drawn = rng.integers(0, 300, size=(40, 300))
    assert np.array_equal(_counted_totals(stats, drawn), stats[drawn].sum(axis=1))


def test_the_corpus_paraphrase_table_keeps_the_pairs_whose_phrases_occur_in_order(tmp_path):
    entries = [
        ("the cat", "a feline"),
        ("cat", "feline"),
        ("cat the", "the cat"),  # "cat the" never occurs in this order
        ("big dog", "large dog"),  # "large dog" never occurs
        ("sat", "was sitting on"),
        ("on the", "upon the"),
        ("dog", "hound"),
    ]
    table = tmp_path / "table.gz"
    table.write_bytes(gzip.compress("".join(f"0.5\n{a}\n{b}\n" for a, b in entries).encode()))
    _build(table, tmp_path / "index")
    lines = [
        ("the", "cat", "sat", "on", "the", "mat"),
        ("a", "feline", "was", "sitting", "on", "the", "hound"),
        ("upon", "the", "big", "dog"),
    ]
    grams = {w[i:j] for w in lines for i in range(len(w)) for j in range(i + 1, len(w) + 1)}
    expected = {
        e: f"{a}\n{b}"
        for e, (a, b) in enumerate(entries)
        if tuple(a.split()) in grams and tuple(b.split()) in grams
    }
    usable = load_index(tmp_path / "index").usable(lines)
    assert usable == expected and list(usable) == sorted(expected)
    assert list(expected) == [0, 1, 4, 5, 6]


def test_answers_to_kept_lines_are_read_back_and_parts_keep_their_order(tmp_path, monkeypatch):
    """A stand-in `java` upper-cases each line and logs how many lines it was given."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "java"
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nlines = sys.stdin.read().splitlines()\n"
        f"open({str(log)!r}, 'a').write(f'{{len(lines)}}\\n')\n"
        "print('\\n'.join(line.upper() for line in lines))\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    references = [f"reference {i}" for i in range(300)]
    outputs = [f"output {i}" for i in range(40)]
    expected = [line.upper() for line in [*references, *outputs]]
    args = ["-cp", "tool.jar", "Tool"]
    first = java.run_jar_parts(args, [*references, *outputs], tmp_path, 100, kept=300)
    calls = [int(n) for n in log.read_text().split()]
    assert first == expected and sum(calls) == 340 and len(calls) == min(3, java.cores())
    log.unlink()
    assert java.run_jar_parts(args, [*references, *outputs], tmp_path, 100, kept=300) == expected
    assert log.read_text().split() == ["40"]  # only the outputs ran
    other = java.run_jar_parts(args, [*references[:-1], *outputs], tmp_path, 1000, kept=299)
    assert other == expected[:299] + expected[300:]
    assert log.read_text().split() == ["40", "339"]  # other references: run again, in one part


def test_bench_score_imports_neither_pandas_nor_numba_nor_torch():
    code = (
        "import sys, bench.cli, bench.results.scoring, bench.reports.terminal, "
        "bench.metrics.suites; "
        "print([m for m in ('pandas', 'numba', 'torch', 'scipy', 'nltk') if m in sys.modules])"
    )
    assert fresh_python(code).strip() == "[]"


def test_score_without_split_reads_each_split_once(tmp_path, monkeypatch):
    from bench.results.scoring import score_file
    from bench.spec.registry import TASKS

    task_class = TASKS.get("mini-webnlg")
    full = tmp_path / "all.txt"
    full.write_text("\n".join(ex.references[0] for ex in task_class().load("test")))
    reads: list[str] = []
    original = task_class.load

    def load(self: object, split: str, data_dir: Path | None = None) -> list:
        reads.append(split)
        return original(self, split, data_dir)

    monkeypatch.setattr(task_class, "load", load)
    result = score_file("mini-webnlg", None, None, full)
    assert list(result["splits"]) == ["test_seen", "test_unseen", "test"]
    assert reads.count("test") == 1


@pytest.mark.slow  # two `bench score` processes
def test_perf_times_bench_score_as_a_user_runs_it(tmp_path):
    from bench.perf.metrics import _timed_score
    from bench.spec.registry import TASKS

    predictions = tmp_path / "unseen.txt"
    examples = TASKS.get("mini-webnlg")().load("test_unseen")
    predictions.write_text("\n".join(ex.references[0] for ex in examples) + "\n")
    timed = _timed_score(tmp_path, predictions, "mini-webnlg", "test_unseen")
    assert timed["command"].startswith("python -m bench score --task mini-webnlg --split")
    for run in (timed, timed["first_run"]):
        assert run["seconds"] > 0 and run["cpu_seconds"] > 0 and run["load_average"] >= 0
    with pytest.raises(Exception, match="no system outputs"):
        _timed_score(tmp_path, tmp_path / "absent.txt", "mini-webnlg", None)


def test_a_tool_that_prints_nothing_for_trailing_empty_lines_still_answers_each_line():
    assert java._answers(["a", "b", ""], ["x", "y", "", ""]) == ["a", "b", "", ""]
    assert java._answers(["a", "b", "c", ""], ["x", "y", "z"]) == ["a", "b", "c"]


def test_a_paraphrase_table_lists_its_pairs_in_the_jars_format(tmp_path):
    """What `corpus_table` writes for the usable pairs, read back as the jar reads it."""
    table = tmp_path / "t.gz"
    table.write_bytes(gzip.compress(b"0.1\nthe cat\na feline\n0.2\n\nnothing\n"))
    _build(table, tmp_path / "index")
    index = load_index(tmp_path / "index")
    assert index.usable([("the", "cat"), ("a", "feline")]) == {0: "the cat\na feline"}
    assert index.usable([("nothing",)]) == {1: "\nnothing"}  # an empty phrase always occurs
