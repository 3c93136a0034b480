"""The real tasks on the real files in BENCH_SHARED_DATA: counts, grouping, order, membership."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from unidecode import unidecode

from bench.spec.registry import TASKS
from bench.tasks.e2e import E2E
from bench.tasks.webnlg import SEEN, UNSEEN, WebNLG
from bench.tasks.xsum import process_url
from tests.shared_data import shared_data_dir


@pytest.fixture(scope="module")
def data() -> Path:
    return shared_data_dir()


def counts(task: str, split: str, data: Path) -> tuple[int, int]:
    examples = TASKS.get(task)().load(split, data)
    return len(examples), sum(len(ex.references) for ex in examples)


@pytest.mark.parametrize(
    ("task", "split", "inputs", "references"),
    [
        ("e2e", "test", 630, 4693),
        ("e2e", "dev", 547, 4672),
        ("e2e", "train", 4862, 42061),
        ("webnlg", "test", 1862, 4928),
        ("webnlg", "test_seen", 971, 2495),
        ("webnlg", "test_unseen", 891, 2433),
        ("webnlg", "train", 6935, 18025),  # 18,025 "good" lexicalisations; 5 entries have none
        ("dart", "test", 5097, 12552),
        ("e2e-cleaned", "test", 1847, 4693),
    ],
)
def test_official_counts(task, split, inputs, references, data):
    assert counts(task, split, data) == (inputs, references)


def test_e2e_references_grouped_by_mr_in_file_order_and_linearized_as_the_paper(data):
    examples = E2E().load("test", data)
    # The paper's own test sources (one line per reference, same row order), whose values are
    # additionally space-tokenized: equal once spaces are ignored.
    paper = [
        line.split("||")[0] for line in (data / "e2e/prefixtuning_format/src1_test.txt").open()
    ]
    ours = [ex.source for ex in examples for _ in ex.references]
    assert [s.replace(" ", "") for s in ours] == [s.replace(" ", "") for s in paper]
    assert examples[0].source == "name : Blue Spice | Type : coffee shop | area : city centre"


def official_normalize(text: str) -> str:
    """The WebNLG/DART reference files' form: ASCII, lowercased, split at non-word characters."""
    return " ".join(" ".join(re.split(r"(\W)", unidecode(text).lower())).split())


def reference_columns(folder: Path, pattern: str, n_files: int) -> list[list[str]]:
    """Per input, its references from the official `*.lex` files (blank line = none)."""
    columns = [(folder / pattern.format(i)).read_text().splitlines() for i in range(n_files)]
    return [[c[row] for c in columns if c[row].strip()] for row in range(len(columns[0]))]


@pytest.mark.parametrize(
    ("split", "variant", "n_files"),
    [("test", "all", 8), ("test_seen", "old", 8), ("test_unseen", "new", 5)],
)
def test_webnlg_order_and_references_match_the_official_reference_files(
    split, variant, n_files, data
):
    examples = WebNLG().load(split, data)
    official = reference_columns(
        data / "webnlg/references", f"gold-{variant}-cat-reference{{}}.lex", n_files
    )
    assert len(official) == len(examples)
    for ours, theirs in zip(examples, official, strict=True):
        # The official files hold references 1..N in file order (unidecoded, lowercased, tokenized).
        assert [official_normalize(r) for r in ours.references][: len(theirs)] == [
            official_normalize(r) for r in theirs
        ]


def test_webnlg_seen_unseen_membership(data):
    task = WebNLG()
    seen, unseen, both = (task.load(s, data) for s in ("test_seen", "test_unseen", "test"))
    assert {ex.source for ex in seen} | {ex.source for ex in unseen} == {ex.source for ex in both}
    assert SEEN.isdisjoint(UNSEEN) and len(SEEN) == 10 and len(UNSEEN) == 5
    train_categories = {e["category"] for e in task._entries("train", data)}
    assert train_categories <= SEEN  # unseen categories never appear in training
    assert task.split("test_unseen").ood and not task.split("test_seen").ood
    assert task.split("test").mixed and not task.split("test_seen").mixed


def test_dart_test_order_matches_the_official_reference_files(data):
    examples = TASKS.get("dart")().load("test", data)
    official = reference_columns(data / "dart/dart_reference", "all-delex-reference{}.lex", 3)
    assert len(official) == len(examples) == 5097
    matches = sum(
        official_normalize(ours.references[0]) == official_normalize(theirs[0])
        for ours, theirs in zip(examples, official, strict=True)
        if theirs
    )
    # The official files are tokenized by a different tokenizer than ours; order is what counts:
    # nearly every first reference agrees after normalization, and a shift would break that.
    assert matches > 0.9 * len(examples)


def test_xsum_topics_of_the_495_real_test_urls(data):
    urls = [
        line.strip()
        for name in ("Filtered", "Leftover")
        for line in (data / f"xsum/XSum-WebArxiveUrls_{name}.txt").open()
        if line.strip()
    ]
    topics = [process_url(url) for url in urls]
    kinds = Counter(
        "news-seen"
        if t[:2] in {("news", "uk"), ("news", "business"), ("news", "world")}
        else "news-other"
        if t[:1] == ("news",)
        else t[0]
        for t in topics
    )
    assert len(urls) == 495
    assert kinds == {
        "news-seen": 306,
        "news-other": 41,
        "sport": 136,
        "newsround": 5,
        "newsbeat": 4,
        "newyddion": 3,
    }


def test_process_url_quirks():
    assert process_url("http://www.bbc.co.uk/news/uk-england-humber-40062271") == ("news", "uk")
    assert process_url("http://www.bbc.com:80/sport/football/37263430") == ("sport", "football")
    assert process_url("http://www.bbc.co.uk/sport/0/football/123") == ("0", "football")
    assert process_url("http://www.bbc.co.uk/newsbeat/10000983") == ("newsbeat",)
    # The paper's edge cases: a last part without `-` is dropped; with no host in the last three
    # parts, three remain, and (news, uk, x) is not the seen topic (news, uk).
    assert process_url("http://www.bbc.co.uk/news/magazine") == ("news",)
    topic = process_url("http://bbc.co.uk/news/uk/politics-123")
    assert topic == ("news", "uk", "politics")
    rules = TASKS.get("xsum-within-news").split_topics
    assert not rules["test_seen"](topic) and rules["test_unseen"](topic)


def test_data_stats_json_reports_counts_and_absent_files(data):
    from tests.runs import bench

    result = bench(
        "data", "stats", "--data-dir", str(data), "--task", "e2e", "--task", "dart", "--json"
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    assert stats["e2e"]["test"] == {"inputs": 630, "references": 4693}
    assert stats["dart"]["test"] == {"inputs": 5097, "references": 12552}
    # No DART training data is staged: reported as absent, with the reason, not as zeros.
    assert stats["dart"]["train"]["available"] is False
    assert "dart-v1.1.1-full-train.json not found" in stats["dart"]["train"]["reason"]


def test_data_stats_prints_the_xsum_topic_pools(data):
    """The staged URL lists cover 495 test ids (none of train or dev): the test pools they give
    are printed, non-zero, and flagged as lower bounds; train and dev show 0 of their ids known."""
    from click.testing import CliRunner

    from bench.cli import app

    args = ["data", "stats", "--data-dir", str(data)]
    args += ["--task", "xsum-news-sports", "--task", "xsum-within-news"]
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    pools = {(t, s): row["pool"] for t, rows in stats.items() for s, row in rows.items()}
    tests = {key: pool["size"] for key, pool in pools.items() if key[1].startswith("test")}
    assert tests == {
        ("xsum-news-sports", "test_news"): 347,
        ("xsum-news-sports", "test_sport"): 136,
        ("xsum-within-news", "test_seen"): 306,
        ("xsum-within-news", "test_unseen"): 41,
    }
    assert all(pools[key]["known"] == 495 and pools[key]["ids"] == 11334 for key in tests)
    assert {pool["known"] for key, pool in pools.items() if key not in tests} == {0}
    table = CliRunner(env={"COLUMNS": "200"}).invoke(app, args).output
    printed = table.split("Splits selected by topic")[1]
    sport = next(line for line in printed.splitlines() if "test_sport" in line)
    cells = [cell.strip() for cell in sport.split("│")[2:9]]
    assert cells[:6] == ["test_sport", "test", "11,334", "495", "136", "136"]
    assert cells[6] == "ids without a topic: 10,839; counts are lower bounds"
