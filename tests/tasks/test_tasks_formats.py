"""Task loaders on generated fixtures: hub schemas, XSum layouts, bad input, downloads, low data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import datasets
import pytest

import bench.tasks.dart
import bench.tasks.e2e
import bench.tasks.webnlg
import bench.tasks.xsum
from bench.data.download import download, sources
from bench.errors import UserError
from bench.spec.grid import GridSpec, expand
from bench.spec.registry import TASKS
from bench.spec.task import Example
from tests.shared_data import shared_data_dir

# --- hub schemas (rows built with `datasets`, as `load_dataset` would return them) ------------


def hub(rows: list[dict]) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows)


def test_e2e_hub_rows_group_by_mr(monkeypatch):
    rows = hub(
        [
            {"meaning_representation": "name[A], eatType[pub]", "human_reference": "A is a pub."},
            {"meaning_representation": "name[A], eatType[pub]", "human_reference": "A: a pub."},
            {"meaning_representation": "name[B], priceRange[cheap]", "human_reference": "B."},
        ]
    )
    monkeypatch.setattr(bench.tasks.e2e, "hub_rows", lambda *args: rows)
    monkeypatch.setenv("BENCH_DATA_DIR", "/nonexistent")  # no files: the hub is the source
    assert TASKS.get("e2e")().load("test", None) == [
        Example("name : A | Type : pub", ("A is a pub.", "A: a pub.")),
        Example("name : B | price : cheap", ("B.",)),
    ]


def webnlg_row(eid: str, category: str, test_category: str, texts: list[str]) -> dict:
    return {
        "category": category,
        "size": 1,
        "eid": eid,
        "original_triple_sets": {"otriple_set": [["X | p | Y"]]},
        "modified_triple_sets": {"mtriple_set": [[f"{category}_{eid} | p | Y"]]},
        "shape": "",
        "shape_type": "",
        "lex": {
            "comment": ["good"] * len(texts),
            "lid": [f"Id{i}" for i in range(len(texts))],
            "text": texts,
            "lang": [""] * len(texts),
        },
        "test_category": test_category,
        "dbpedia_links": [],
        "links": [],
    }


def test_webnlg_hub_test_keeps_only_testdata_with_lex_in_eid_order(monkeypatch):
    rows = hub(
        [
            webnlg_row("Id10", "Airport", "testdata_with_lex", ["a10"]),
            webnlg_row("Id2", "Athlete", "testdata_with_lex", ["b2", "c2"]),
            webnlg_row("Id1", "Athlete", "testdata_unseen_with_lex", ["dup"]),
            webnlg_row("Id3", "Airport", "testdata_no_lex", []),
        ]
    )
    monkeypatch.setattr(bench.tasks.webnlg, "hub_rows", lambda *args: rows)
    monkeypatch.setenv("BENCH_DATA_DIR", "/nonexistent")
    task = TASKS.get("webnlg")()
    assert [ex.references for ex in task.load("test", None)] == [("b2", "c2"), ("a10",)]
    assert task.load("test_unseen", None) == [Example("| Athlete_Id2 : p : Y", ("b2", "c2"))]


def test_dart_hub_rows_are_columnar_and_test_merges_consecutive_duplicates(monkeypatch):
    def row(triples, texts):
        return {
            "tripleset": triples,
            "subtree_was_extended": False,
            "annotations": {"source": ["e2e"] * len(texts), "text": texts},
        }

    rows = hub(
        [
            row([["A", "COUNTRY", "B"]], ["one"]),
            row([["A", "COUNTRY", "B"]], ["two"]),
            row([["C", "p", "D"]], ["three"]),
            row([["A", "COUNTRY", "B"]], ["four"]),
        ]
    )
    monkeypatch.setattr(bench.tasks.dart, "hub_rows", lambda *args: rows)
    monkeypatch.setenv("BENCH_DATA_DIR", "/nonexistent")
    task = TASKS.get("dart")()
    assert task.load("test", None) == [
        Example("A : country : B", ("one", "two")),
        Example("C : p : D", ("three",)),
        Example("A : country : B", ("four",)),
    ]
    assert task.load("train", None)[0] == Example("A : country : B", ("one", "two", "four"))


def test_hub_unreachable_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", "/nonexistent")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"hub dataset 'e2e_nlg' could not be loaded.*--data-dir"):
        TASKS.get("e2e")().load("test", None)


# --- XSum layouts and topic splits -------------------------------------------------------------


def write_summary(folder: Path, bbc_id: str, url: str, summary: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{bbc_id}.summary").write_text(
        f"[SN]URL[SN]\n{url}\n\n[SN]TITLE[SN]\nT\n\n[SN]FIRST-SENTENCE[SN]\n{summary}\n\n"
        f"[SN]RESTBODY[SN]\n{body}\nShare this with\nEmail\n"
    )


@pytest.fixture
def xsum_release(tmp_path: Path) -> Path:
    """A tiny XSum release: bbc-summary-data files, the split file, the id -> URL map."""
    folder = tmp_path / "xsum" / "bbc-summary-data"
    topics = {
        "1": "news/uk-politics-1",
        "2": "news/business-2",
        "3": "sport/football/3",
        "4": "news/science-environment-4",
        "5": "news/world-europe-5",
        "6": "sport/0/cricket/6",
        "7": "news/uk-7",
        "8": "sport/tennis/8",
        "9": "news/health-9",
    }
    for bbc_id, path in topics.items():
        url = f"http://web.archive.org/web/2016/http://www.bbc.co.uk/{path}"
        write_summary(folder, bbc_id, url, f"summary {bbc_id}.", f"body {bbc_id}.\nmore {bbc_id}.")
    split = {"train": ["1", "2", "3", "4"], "validation": ["5", "6"], "test": ["7", "8", "9"]}
    (tmp_path / "xsum" / "XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json").write_text(json.dumps(split))
    return tmp_path


def test_xsum_from_the_release_drops_share_lines(xsum_release):
    test = TASKS.get("xsum")().load("test", xsum_release)
    assert test[0] == Example("body 7.\nmore 7.", ("summary 7.",))
    assert len(TASKS.get("xsum")().load("train", xsum_release)) == 4


def test_xsum_topic_splits(xsum_release):
    def sources(task: str, split: str) -> list[str]:
        return [ex.references[0] for ex in TASKS.get(task)().load(split, xsum_release)]

    assert sources("xsum-news-sports", "train") == ["summary 1.", "summary 2.", "summary 4."]
    assert sources("xsum-news-sports", "dev") == ["summary 5."]  # sport/0/cricket is not sport
    assert sources("xsum-news-sports", "test_sport") == ["summary 8."]
    assert sources("xsum-news-sports", "test_news") == ["summary 7.", "summary 9."]
    assert sources("xsum-within-news", "train") == ["summary 1.", "summary 2."]
    assert sources("xsum-within-news", "test_seen") == ["summary 7."]
    assert sources("xsum-within-news", "test_unseen") == ["summary 9."]
    assert TASKS.get("xsum-news-sports")().split("test_sport").ood


def test_xsum_jsonl_with_the_url_map_and_seeded_test_sample(tmp_path, monkeypatch):
    folder = tmp_path / "xsum"
    folder.mkdir()
    rows = [{"id": str(i), "document": f"d{i}", "summary": f"s{i}"} for i in range(30)]
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    urls = [
        f"http://web.archive.org/web/1/http://www.bbc.co.uk/sport/golf/{i} {i}" for i in range(30)
    ]
    (folder / "XSum-WebArxiveUrls-BBCids.txt").write_text("\n".join(urls))
    monkeypatch.setattr(bench.tasks.xsum, "TEST_SAMPLE", 7)
    first = TASKS.get("xsum-news-sports")().load("test_sport", tmp_path)
    assert len(first) == 7 and first == TASKS.get("xsum-news-sports")().load("test_sport", tmp_path)
    assert [int(ex.source[1:]) for ex in first] == sorted(int(ex.source[1:]) for ex in first)


def test_xsum_topics_without_urls_say_which_file_is_missing(tmp_path):
    folder = tmp_path / "xsum"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text(
            json.dumps({"id": "1", "document": "d", "summary": "s"})
        )
    with pytest.raises(UserError, match=r"no XSum-WebArxiveUrls-BBCids\.txt or XSum-WebArx"):
        TASKS.get("xsum-within-news")().load("train", tmp_path)


# The official URL files' formats: the -BBCids map (`URL ID`) and the bare URL list, whose id ends
# the URL; ARCHIVE is the Wayback prefix both carry.
ARCHIVE = "http://web.archive.org/web/20160101000000/http://www.bbc.co.uk"
TOPICS = {  # id -> path: news (seen and unseen), sport, old-style sport, and a non-news root
    "101": "news/uk-politics-101",
    "102": "news/business-102",
    "103": "sport/football/103",
    "104": "news/health-104",
    "105": "news/world-europe-105",
    "106": "sport/0/cricket/106",
    "107": "news/uk-107",
    "108": "sport/tennis/108",
    "109": "news/technology-109",
    "110": "newsbeat/110",
    "111": "news/world-asia-111",
    "112": "sport/golf/112",
}
SPLIT = {
    "train": ["101", "102", "103", "104"],
    "validation": ["105", "106"],
    "test": ["107", "108", "109", "110", "111", "112", "113"],  # 113 has no URL anywhere
}


def write_xsum_metadata(root: Path, url_file: str) -> None:
    """A data dir with only the split file and one URL file (no article text), as staged."""
    folder = root / "xsum"
    folder.mkdir(parents=True)
    (folder / "XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json").write_text(json.dumps(SPLIT))
    bbc_ids = url_file.endswith("BBCids.txt")
    lines = [f"{ARCHIVE}/{path}" + (f" {i}" if bbc_ids else "") for i, path in TOPICS.items()]
    (folder / url_file).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("url_file", ["XSum-WebArxiveUrls-BBCids.txt", "XSum-WebArxiveUrls.txt"])
def test_data_stats_reports_topic_pools_from_metadata_alone(tmp_path, url_file):
    from bench.data.stats import all_stats

    write_xsum_metadata(tmp_path, url_file)
    stats = all_stats(tmp_path, ["xsum-news-sports", "xsum-within-news"])
    sizes = {
        (task, split): tuple(row["pool"][key] for key in ("from", "ids", "known", "pool", "size"))
        for task, rows in stats.items()
        for split, row in rows.items()
    }
    assert sizes == {
        ("xsum-news-sports", "train"): ("train", 4, 4, 3, 3),  # 101, 102, 104
        ("xsum-news-sports", "dev"): ("validation", 2, 2, 1, 1),  # sport/0/cricket is not sport
        ("xsum-news-sports", "test_news"): ("test", 7, 6, 3, 3),  # 107, 109, 111
        ("xsum-news-sports", "test_sport"): ("test", 7, 6, 2, 2),  # 108, 112
        ("xsum-within-news", "train"): ("train", 4, 4, 2, 2),  # 101, 102
        ("xsum-within-news", "dev"): ("validation", 2, 2, 1, 1),
        ("xsum-within-news", "test_seen"): ("test", 7, 6, 2, 2),  # 107, 111
        ("xsum-within-news", "test_unseen"): ("test", 7, 6, 1, 1),  # 109 (newsbeat is not news)
    }
    # No article text: the loader's rows are absent with the reason, never zeros.
    assert stats["xsum-news-sports"]["train"]["available"] is False


def test_data_stats_caps_test_pools_at_the_sample_size(tmp_path, monkeypatch):
    from bench.data.stats import all_stats

    write_xsum_metadata(tmp_path, "XSum-WebArxiveUrls.txt")
    monkeypatch.setattr(bench.tasks.xsum, "TEST_SAMPLE", 2)
    rows = all_stats(tmp_path, ["xsum-news-sports"])["xsum-news-sports"]
    assert (rows["test_news"]["pool"]["pool"], rows["test_news"]["pool"]["size"]) == (3, 2)
    assert (rows["train"]["pool"]["pool"], rows["train"]["pool"]["size"]) == (3, 3)  # never cut


def test_data_stats_table_prints_the_topic_pools(tmp_path):
    from rich.console import Console

    from bench.data.stats import all_stats
    from bench.reports import terminal

    write_xsum_metadata(tmp_path, "XSum-WebArxiveUrls.txt")
    console = Console(record=True, width=200)
    terminal.data_stats(all_stats(tmp_path, ["xsum-within-news"]), console)
    pools = console.export_text().split("Splits selected by topic")[1].splitlines()
    rows = {cells[2]: cells[3:9] for line in pools if len(cells := line.split("│")) == 10}
    rows = {split.strip(): [cell.strip() for cell in cells] for split, cells in rows.items()}
    assert rows["train"] == ["train", "4", "4", "2", "2", ""]
    assert rows["test_unseen"][:5] == ["test", "7", "6", "1", "1"]
    assert rows["test_unseen"][5] == "ids without a topic: 1; counts are lower bounds"


def test_xsum_topics_read_the_bare_url_list(tmp_path):
    write_xsum_metadata(tmp_path, "XSum-WebArxiveUrls.txt")
    folder = tmp_path / "xsum"
    rows = [{"id": i, "document": f"d{i}", "summary": f"s{i}"} for i in TOPICS]
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    sport = TASKS.get("xsum-news-sports")().load("test_sport", tmp_path)
    assert [ex.source for ex in sport] == ["d103", "d108", "d112"]
    data_files = TASKS.get("xsum-news-sports")().data_files(tmp_path)
    assert folder / "XSum-WebArxiveUrls.txt" in data_files


def test_xsum_topics_name_the_missing_ids_when_the_url_files_are_partial(tmp_path):
    write_xsum_metadata(tmp_path, "XSum-WebArxiveUrls.txt")
    folder = tmp_path / "xsum"
    rows = [{"id": i, "document": f"d{i}", "summary": f"s{i}"} for i in SPLIT["test"]]
    for split in ("train", "validation", "test"):
        (folder / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(UserError, match=r"no URL for 1 of 7 articles \(first id 113\)"):
        TASKS.get("xsum-within-news")().load("test_unseen", tmp_path)


def test_data_stats_reports_a_damaged_url_file_as_the_pools_reason(tmp_path):
    from bench.data.stats import all_stats

    write_xsum_metadata(tmp_path, "XSum-WebArxiveUrls.txt")
    with (tmp_path / "xsum" / "XSum-WebArxiveUrls.txt").open("a") as handle:
        handle.write("http://www.bbc.co.uk/news/no-id-here\n")
    pool = all_stats(tmp_path, ["xsum-within-news"])["xsum-within-news"]["test_seen"]["pool"]
    assert pool["available"] is False
    assert "XSum-WebArxiveUrls.txt, line 13: expected `URL ID` or a URL ending" in pool["reason"]


# --- bad input: one line naming the file, and the fix -------------------------------------------


def e2e_dir(tmp_path: Path, test_csv: str) -> Path:
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "testset_w_refs.csv").write_text(test_csv)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'mr,ref\n"name[A], eatType[pub]",A is a pub.\n"name[B], area[',
            "after line 2: malformed CSV",
        ),
        ("mr,ref\nname[A]\n", "line 2: row has fewer fields"),
        ("meaning,text\nname[A],A.\n", r"header lacks column\(s\) mr, ref"),
        ("mr,ref\nname[A] eatType,A.\n", "line 2: malformed MR"),
    ],
)
def test_bad_e2e_csv(tmp_path, text, message):
    root = e2e_dir(tmp_path, text)
    with pytest.raises(UserError, match=message) as error:
        TASKS.get("e2e")().load("test", root)
    assert "testset_w_refs.csv" in str(error.value) and "\n" not in str(error.value)


def webnlg_test_dir(tmp_path: Path, xml: str) -> Path:
    folder = tmp_path / "webnlg" / "webnlg_challenge_2017" / "test"
    folder.mkdir(parents=True)
    (folder / "testdata_with_lex.xml").write_text(xml)
    return tmp_path


ENTRY = (
    '<entry category="{cat}" eid="Id1" size="1"><modifiedtripleset>{triples}'
    '</modifiedtripleset><lex comment="good">x</lex></entry>'
)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<benchmark><entries><entry", "malformed XML"),
        (ENTRY.format(cat="Airport", triples=""), "entry Id1: no <modifiedtripleset>"),
        (ENTRY.format(cat="Airport", triples="<mtriple>A | b</mtriple>"), "not `subject"),
        (
            ENTRY.format(cat="Dinosaur", triples="<mtriple>A | b | c</mtriple>"),
            "unknown category 'Dinosaur'",
        ),
    ],
)
def test_bad_webnlg_xml(tmp_path, xml, message):
    root = webnlg_test_dir(
        tmp_path, f"<benchmark><entries>{xml}</entries></benchmark>" if "<entry c" in xml else xml
    )
    with pytest.raises(UserError, match=message):
        TASKS.get("webnlg")().load("test", root)


def test_missing_files_name_the_path_and_the_download_command(tmp_path):
    with pytest.raises(
        UserError, match=r"dart-v1.1.1-full-train.json not found.*data download dart"
    ):
        TASKS.get("dart")().load("train", tmp_path)


def test_unknown_split(tmp_path):
    with pytest.raises(UserError, match="no split 'validation'; valid: train, dev, test"):
        TASKS.get("e2e")().load("validation", tmp_path)


# --- download: pinned hashes, tested on file:// mirrors -----------------------------------------


def mirror_of(task: str, root: Path, contents: dict[str, bytes]) -> None:
    """Lay `contents` (data-dir path -> bytes) out as raw.githubusercontent.com would serve it."""
    for source in sources(task):
        relative = source.url.split("https://raw.githubusercontent.com/", 1)[1]
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(contents[source.path])


def test_download_verifies_pinned_hashes(tmp_path, monkeypatch):
    shared = shared_data_dir()
    contents = {s.path: (shared / s.path).read_bytes() for s in sources("e2e")}
    mirror_of("e2e", tmp_path / "mirror", contents)
    monkeypatch.setenv("BENCH_DATA_MIRROR", (tmp_path / "mirror").as_uri())
    files = download("e2e", tmp_path / "data", say=lambda line: None)
    assert [f.name for f in files] == ["trainset.csv", "devset.csv", "testset_w_refs.csv"]
    assert len(TASKS.get("e2e")().load("test", tmp_path / "data")) == 630


def test_download_hash_mismatch_writes_nothing(tmp_path, monkeypatch):
    contents = {s.path: b"mr,ref\n" for s in sources("e2e")}
    mirror_of("e2e", tmp_path / "mirror", contents)
    monkeypatch.setenv("BENCH_DATA_MIRROR", (tmp_path / "mirror").as_uri())
    digest = hashlib.sha256(b"mr,ref\n").hexdigest()
    with pytest.raises(UserError, match=f"sha256 {digest} does not match the pinned"):
        download("e2e", tmp_path / "data", say=lambda line: None)
    assert not [p for p in (tmp_path / "data").rglob("*") if p.is_file()]


def test_download_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_MIRROR", (tmp_path / "nowhere").as_uri())
    with pytest.raises(UserError, match=r"could not fetch .*trainset\.csv.*check the network"):
        download("e2e", tmp_path / "data", say=lambda line: None)


def test_download_of_an_unknown_task():
    with pytest.raises(UserError, match="no download recipe for task 'mini-e2e'"):
        sources("mini-e2e")


# --- low-data subsets ----------------------------------------------------------------------------


def test_low_data_cells_are_sizes_x_samples_x_seeds():
    spec = GridSpec.model_validate(
        {
            "name": "g",
            "model": "mini-tiny",
            "seeds": [0, 1],
            "tasks": [{"name": "mini-e2e", "n_train": [50, 100, None], "samples": 3}],
            "methods": [{"name": "finetune"}],
        }
    )
    cells = expand(spec)
    assert len(cells) == (2 * 3 + 1) * 2
    assert {(c.n_train, c.sample) for c in cells} == {
        (50, 0),
        (50, 1),
        (50, 2),
        (100, 0),
        (100, 1),
        (100, 2),
        (None, 0),
    }


def test_data_stats_prints_one_line_for_a_task_whose_files_are_all_absent(monkeypatch, tmp_path):
    """Without a data dir (and no hub: offline) each task's splits fail for one reason."""
    from rich.console import Console

    from bench.data.stats import all_stats
    from bench.reports import terminal

    console = Console(record=True, width=300)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))  # empty: not a cached copy
    terminal.data_stats(all_stats(None, ["e2e", "mini-e2e"]), console)
    lines = [line for line in console.export_text().splitlines() if "│" in line]
    e2e = [line for line in lines if line.split("│")[1].strip() == "e2e"]
    assert len(e2e) == 1 and "all 3" in e2e[0] and "absent: " in e2e[0]
    mini = [line for line in lines if line.split("│")[1].strip() == "mini-e2e"]
    assert len(mini) == 3  # counted splits keep a line each
