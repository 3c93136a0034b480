"""Edge cases of the metric implementations, the suites and `python -m bench score`."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sacrebleu.metrics.lib_ter import translation_edit_rate

from bench.cli import app, main
from bench.errors import UserError
from bench.metrics import MetricUnavailable, text
from bench.metrics.coco import ptb_tokenize
from bench.metrics.java import coco_file
from bench.metrics.meteor import Meteor
from bench.metrics.mteval import MtevalBleu, MtevalNist, _nist_length_penalty, closest_length
from bench.metrics.mteval import tokenize as mteval_tokenize
from bench.metrics.multibleu import MultiBleu
from bench.metrics.suites import SUITES, score_suite
from bench.metrics.ter import Ter, edits
from bench.spec.registry import TASKS
from tests.shared_data import metric_vectors_dir, shared_data_dir

REFS = [["The cat sat on the mat.", "A cat was sitting on the mat."], ["Dogs bark at night."]]


# --- preprocessing ----------------------------------------------------------------------------
def test_mteval_tokenization_lowercases_ascii_only_and_keeps_numbers_whole():
    assert mteval_tokenize("ÉCOLE Café costs £20.50, or 3,000.") == [
        "École",  # non-ASCII capitals stay, as with Perl's tr/A-Z/a-z/
        "café",
        "costs",
        "£20.50",
        ",",
        "or",
        "3,000",
        ".",
    ]
    assert mteval_tokenize("it's 5-star") == ["it's", "5", "-", "star"]


def test_webnlg_outputs_and_references_follow_the_challenge_script():
    assert text.webnlg_hypothesis("  Ünïon's  Café–Bar \n") == "union ' s cafe - bar"
    # References are split before transliteration: a non-word character stays one token.
    assert text.webnlg_reference("A…B") == "a ... b"
    assert text.webnlg_hypothesis("A…B") == "a . . . b"


def test_dart_text_tokenizes_raw_text_and_is_idempotent():
    once = text.dart_text("Jeff Daniels' Hawaii Five-O (1982).")
    assert once == "jeff daniels ' hawaii five - o ( 1982 ) ."
    assert text.dart_text(once) == once


def test_e2e_reference_cleanup_repairs_encodings_and_keeps_quotes():
    assert text.e2e_reference("'Prices are Â£20-25 at the cafÃ©.'") == (
        "'Prices are £20-25 at the café.'"
    )


# --- n-gram metrics ---------------------------------------------------------------------------
def test_closest_reference_length_ties_go_to_the_shorter():
    assert closest_length(5, [7, 3]) == 3
    assert closest_length(5, [6, 4, 9]) == 4


def test_mteval_bleu_perfect_empty_and_unequal_reference_counts():
    bleu = MtevalBleu()
    perfect = bleu.segment_stats(["The cat sat on the mat.", "Dogs bark at night."], REFS)
    assert bleu.aggregate(perfect) == pytest.approx(1.0)
    empty = bleu.segment_stats(["", "Dogs bark at night."], REFS)
    assert empty[0, 0] == 0  # an empty output contributes length 0 and no n-grams
    assert 0 < bleu.aggregate(empty) < 1


def test_nist_length_penalty_and_perfect_match():
    assert _nist_length_penalty(1.0) == 1.0
    assert _nist_length_penalty(2 / 3) == pytest.approx(0.5)
    nist = MtevalNist()
    stats = nist.segment_stats(["The cat sat on the mat.", "Dogs bark at night."], REFS)
    assert nist.aggregate(stats) > 0
    assert nist.aggregate(nist.segment_stats(["", ""], REFS)) == 0


def test_multi_bleu_counts_empty_reference_files_in_the_closest_length():
    bleu = MultiBleu(lowercase=True, pad_to=3)
    stats = bleu.segment_stats(["word"], [["one two three four"]])
    assert stats[0, 1] == 0  # the padded empty reference (length 0) is the closest
    assert MultiBleu(lowercase=True, pad_to=1).segment_stats(["word"], [["a b c d"]])[0, 1] == 4


def test_multi_bleu_lowercases_only_with_lc():
    refs = [["the cat sat on the mat"]]
    assert MultiBleu(lowercase=True, pad_to=1).aggregate(
        MultiBleu(lowercase=True, pad_to=1).segment_stats(["THE CAT SAT ON THE MAT"], refs)
    ) == pytest.approx(100.0)
    cased = MultiBleu(lowercase=False, pad_to=1)
    assert cased.aggregate(cased.segment_stats(["THE CAT SAT ON THE MAT"], refs)) == 0.0


@pytest.mark.parametrize(
    ("hyp", "ref"),
    [
        ("", "a b"),
        ("a b", ""),
        ("c b a", "a b c"),
        (
            "the big red cat sat on the mat near the door " * 3,
            "on the mat near the door the cat sat " * 3,
        ),
        ("x y " * 15 + "z", "y x " * 12),
        ("a b c d e f g h i j k l", "g h i j k l a b c d e f"),
    ],
)
def test_ter_edits_equal_sacrebleus_tercom_port(hyp, ref):
    assert edits(hyp.split(), ref.split()) == (
        translation_edit_rate(hyp.split(), ref.split())[0] if ref else len(hyp.split())
    )


def test_ter_is_case_insensitive_and_lower_is_better():
    ter = Ter()
    assert not ter.higher_is_better
    stats = ter.segment_stats(["The Cat sat", "x y"], [["the cat sat"], ["a b c d", "x y z"]])
    assert stats.tolist() == [[0.0, 3.0], [1.0, 3.5]]  # fewest edits, mean reference length
    assert ter.aggregate(stats) == pytest.approx(1 / 6.5)


# --- suites -----------------------------------------------------------------------------------
def test_every_suite_is_listed_with_its_official_metric_names():
    assert SUITES.get("e2e").names() == ["bleu", "nist", "meteor", "rouge_l", "cider"]
    assert SUITES.get("webnlg").names() == ["bleu", "meteor", "ter"]
    assert SUITES.get("dart").names()[:3] == ["bleu", "meteor", "ter"]
    assert SUITES.get("xsum").names() == ["rouge_1", "rouge_2", "rouge_l"]
    out = CliRunner().invoke(app, ["list", "metrics"]).output
    assert "e2e\tbleu, nist, meteor, rouge_l, cider\t" in out
    assert "mini\tbleu, rouge_l\t" in out


def test_xsum_rouge_uses_porter_stemming_on_a_0_100_scale():
    scores = score_suite("xsum", ["the cats were running"], [["the cat was running"]])
    assert scores["rouge_1"].value == pytest.approx(75.0)  # the, cat(s), running; not were/was


def test_a_missing_reference_or_a_length_mismatch_is_an_error():
    with pytest.raises(UserError, match="input 2 has no reference"):
        score_suite("mini", ["a", "b"], [["a"], [" "]])
    with pytest.raises(ValueError, match="2 hypotheses for 1 reference lists"):
        score_suite("mini", ["a", "b"], [["a"]])


def test_without_java_the_java_metrics_are_unavailable_not_zero(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `java` here
    scores = score_suite("e2e", ["The cat sat on the mat.", ""], REFS)
    assert scores["bleu"].value is not None and scores["nist"].value is not None
    for name in ("meteor", "rouge_l", "cider"):
        assert scores[name].value is None
        assert "needs Java" in scores[name].unavailable
        assert "apt-get install default-jre-headless" in scores[name].unavailable


def test_a_crashing_java_scorer_makes_its_metrics_unavailable_not_the_cell_failed(
    monkeypatch, tmp_path
):
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'java.lang.OutOfMemoryError: Java heap space' >&2\nexit 3\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    scores = score_suite("e2e", ["The cat sat on the mat.", ""], REFS)
    assert scores["bleu"].value is not None and scores["nist"].value is not None
    for name in ("meteor", "rouge_l", "cider"):
        assert scores[name].value is None
        assert "Java scorer failed (exit 3: java.lang.OutOfMemoryError" in scores[name].unavailable


@pytest.mark.parametrize(("name", "package"), [("bertscore", "bert_score"), ("bleurt", "bleurt")])
def test_optional_model_metrics_are_unavailable_without_their_packages(name, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    metric = SUITES.get("dart").by_name[name].metric
    with pytest.raises(MetricUnavailable, match="optional: install the"):
        metric.segment_stats(["the cat sat"], [["the cat sat"]])


# --- the Java tools ---------------------------------------------------------------------------
@pytest.mark.slow
def test_ptb_tokenizer_keeps_one_line_per_text_and_drops_punctuation():
    # coco's quirks, kept: "£" becomes "#", and lowercased brackets escape the punctuation list.
    assert ptb_tokenize(["Hello, World!", "", "Café £20 (cheap).", ""]) == [
        "hello world",
        "",
        "café # 20 -lrb- cheap -rrb-",
        "",
    ]


@pytest.mark.slow
def test_meteor_equals_the_jar_with_its_full_paraphrase_table():
    """Segment and corpus scores against the unmodified jar (full paraphrase table, its own
    EVAL): paraphrases, stems, synonyms, normalization, a perfect match (whose chunks are not
    summed), an empty output and 1-3 references."""
    hyps = [
        "the cat sat on the mat",
        "",
        "The U.S.-based firm isn't “cheap”; it's pricey... Café Rouge",
        "dogs are barking loudly at a big dog",
        "in the near future the prime minister will go",
    ]
    refs = [
        ["the cat sat on the mat"],
        ["something"],
        ["The US based company is not inexpensive, it is costly. Cafe Rouge"],
        ["the dog barks", "dogs bark loud at the large hound", "dogs barking"],
        ["soon the premier is going to leave", "in the coming days the head of government goes"],
    ]
    meteor = Meteor()
    stats = meteor.segment_stats(hyps, refs)
    ours = meteor.aggregate(stats)
    jar = coco_file("meteor", "meteor-1.5.jar")
    command = ["java", "-Xmx2G", "-jar", jar.name, "-", "-", "-stdio", "-l", "en", "-norm"]
    with subprocess.Popen(
        command, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as jvm:
        for hyp, ref in zip(hyps, refs, strict=True):
            jvm.stdin.write(" ||| ".join(["SCORE", *ref, hyp]) + "\n")
        jvm.stdin.flush()
        stat_lines = [jvm.stdout.readline().strip() for _ in hyps]
        jvm.stdin.write("EVAL ||| " + " ||| ".join(stat_lines) + "\n")
        jvm.stdin.close()
        theirs = [float(x) for x in jvm.stdout.read().split()]  # segments, then the corpus
    assert [meteor.aggregate(stats[i : i + 1]) for i in range(len(hyps))] == pytest.approx(
        theirs[:-1], abs=1e-12
    )
    assert ours == pytest.approx(theirs[-1], abs=1e-12)
    assert 0 < ours < 1


@pytest.mark.slow
def test_e2e_suite_handles_empty_unicode_and_unequal_reference_counts():
    hyps = ["", "Café Rouge is a pub near the river.", "Dogs bark at night."]
    refs = [["The cat sat."], ["Café Rouge is a pub by the river.", "A pub: Café Rouge."], REFS[1]]
    scores = score_suite("e2e", hyps, refs)
    for name, score in scores.items():
        assert score.value is not None and math.isfinite(score.value), name
        assert score.low <= score.value <= score.high, name
    assert scores["bleu"].value > 0


# --- python -m bench score --------------------------------------------------------------------
def test_score_cli_prints_the_json_of_every_metric(tmp_path):
    examples = TASKS.get("mini-webnlg")().load("test_unseen")
    predictions = tmp_path / "out.txt"
    predictions.write_text("\n".join(ex.references[0] for ex in examples) + "\n")
    args = ["score", "--task", "mini-webnlg", "--split", "test_unseen", "--json"]
    result = CliRunner().invoke(app, [*args, "--predictions", str(predictions)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["task"], out["split"], out["n"]) == ("mini-webnlg", "test_unseen", len(examples))
    assert list(out["metrics"]) == ["bleu", "rouge_l"]
    assert out["metrics"]["rouge_l"] == {"value": 100.0, "low": 100.0, "high": 100.0}
    table = CliRunner().invoke(app, [*args[:-1], "--predictions", str(predictions)]).output
    assert "rouge_l" in table and "[100.00, 100.00]" in table


def test_score_cli_wrong_line_count_exits_2_naming_both_counts(tmp_path, monkeypatch, capsys):
    predictions = tmp_path / "out.txt"
    predictions.write_text("one\ntwo\n")
    argv = ["bench", "score", "--task", "mini-e2e", "--predictions", str(predictions)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "has 2 lines but mini-e2e test has 200 inputs" in error
    assert "Traceback" not in error


def _score_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["score", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_score_without_split_scores_every_split_cut_from_one_file_of_the_full_test(tmp_path):
    task = TASKS.get("mini-webnlg")()
    seen, unseen = task.load("test_seen"), task.load("test_unseen")
    full = tmp_path / "all.txt"  # seen outputs perfect, unseen ones a fixed wrong sentence
    full.write_text("\n".join([ex.references[0] for ex in seen] + ["x y z ."] * len(unseen)))
    out = _score_json("--task", "mini-webnlg", "--predictions", str(full))
    assert out["task"] == "mini-webnlg"
    assert {s: v["n"] for s, v in out["splits"].items()} == {
        "test_seen": 150,
        "test_unseen": 150,
        "test": 300,
    }
    rouge = {s: v["metrics"]["rouge_l"]["value"] for s, v in out["splits"].items()}
    assert rouge["test_seen"] == 100.0 and rouge["test_unseen"] == 0.0
    assert rouge["test"] == pytest.approx(50.0)
    table = CliRunner().invoke(app, ["score", "--task", "mini-webnlg", "--predictions", str(full)])
    assert "test_unseen" in table.output and "[100.00, 100.00]" in table.output
    e2e = tmp_path / "e2e.txt"
    e2e.write_text("\n".join(ex.references[0] for ex in TASKS.get("mini-e2e")().load("test")))
    assert list(_score_json("--task", "mini-e2e", "--predictions", str(e2e))["splits"]) == ["test"]


def test_score_without_split_names_the_line_counts_it_takes(tmp_path):
    from bench.results.scoring import score_file

    predictions = tmp_path / "p.txt"
    predictions.write_text("a\nb\n")
    expected = "takes 300 (test_seen, test_unseen, test), 150 (test_seen) or 150 (test_unseen)"
    with pytest.raises(UserError, match=re.escape(expected)):
        score_file("mini-webnlg", None, None, predictions)
    predictions.write_text("a\n" * 150)  # as long as test_seen and as test_unseen
    with pytest.raises(
        UserError, match="size of mini-webnlg test_seen and test_unseen: pass --split"
    ):
        score_file("mini-webnlg", None, None, predictions)


@pytest.mark.slow  # METEOR on 1,862 and on 971 outputs: about 40 s of CPU
def test_score_webnlg_challenge_file_gives_seen_unseen_and_all(tmp_path):
    data, vectors = shared_data_dir(), metric_vectors_dir() / "webnlg"
    task = TASKS.get("webnlg")()
    layout = task.eval_split_rows(data)
    full = task.load("test", data)
    for split, rows in layout.items():
        assert rows.full == "test" and [full[i] for i in rows.rows] == task.load(split, data)
    outputs = vectors / "bart-large_webnlg-all.txt"
    out = _score_json("--task", "webnlg", "--data-dir", str(data), "--predictions", str(outputs))
    splits = out["splits"]
    sizes = {"test_seen": 971, "test_unseen": 891, "test": 1862}
    assert {split: entry["n"] for split, entry in splits.items()} == sizes
    official = json.loads((vectors / "official.json").read_text())["scores"]
    for split, part in (("test_seen", "seen"), ("test_unseen", "unseen"), ("test", "all")):
        bleu = splits[split]["metrics"]["bleu"]["value"]
        assert bleu == pytest.approx(official[part]["BLEU"], abs=0.01), split
    lines = outputs.read_text(encoding="utf-8").splitlines()
    seen = tmp_path / "seen.txt"
    seen.write_text("\n".join(lines[i] for i in layout["test_seen"].rows) + "\n")
    args = ("--task", "webnlg", "--split", "test_seen", "--data-dir", str(data))
    alone = _score_json(*args, "--predictions", str(seen))
    assert alone["n"] == 971 and alone["metrics"] == splits["test_seen"]["metrics"]


def test_score_reads_crlf_files_and_reports_missing_ones(tmp_path):
    from bench.results.scoring import read_predictions

    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a b\r\n\r\nc\r\n")
    assert read_predictions(path) == ["a b", "", "c"]
    with pytest.raises(UserError, match="no such file"):
        read_predictions(tmp_path / "absent.txt")
