"""XSum (Narayan et al., 2018) and the paper's unseen-topic splits of it.

Articles come from one of, under `DIR/xsum/`:
- `{train,validation,test}.jsonl`: one `{"id", "document", "summary"}` object per line (the hub
  dataset's fields, e.g. saved from `datasets`; an optional `url` field is used for topics);
- `bbc-summary-data/<id>.summary` (the authors' release) with the official split file
  `XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json`: the document is RESTBODY without the share lines, the
  summary FIRST-SENTENCE, as the hub dataset builds them;
- or, with no data dir, the hub dataset `EdinburghNLP/xsum`.

Topic splits need each article's URL: from the `.summary` files or `url` fields, else from the
authors' id -> URL map `XSum-WebArxiveUrls-BBCids.txt` (lines `URL ID`). The topic of a URL is
the paper's `process_url`: the last three path components, minus a numeric last one (or else only
the first `-`-token of the last one), minus a leading `www` host: `.../news/uk-england-4006` ->
(news, uk), `.../sport/football/3726` -> (sport, football), old `.../sport/0/football/1` ->
(0, football), which the paper does not count as sport.
- `xsum-news-sports`: train and dev on news; `test_sport` (OOD) on sport, with `test_news` (ID).
- `xsum-within-news`: train and dev on news/uk, news/business, news/world; `test_unseen` (OOD) on
  the other news topics, with `test_seen` (ID) on the training topics.
Test splits are subsampled to 8,000 articles as the paper's were, but seeded (the paper's were
not); train and dev keep every matching article. The recipe is recorded with each run.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from bench.data import DEV, TRAIN, EvalSplit, Example, Task
from bench.datafiles import data_root, field, read_json, read_jsonl, require
from bench.errors import UserError
from bench.hub import hub_rows
from bench.registry import TASKS

SPLIT_FILE = "xsum/XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json"
URL_MAP = "xsum/XSum-WebArxiveUrls-BBCids.txt"
HUB_ID = "EdinburghNLP/xsum"
OFFICIAL = {TRAIN: "train", DEV: "validation", "test": "test"}
TEST_SAMPLE = 8000
# Lines the hub loader drops from RESTBODY (share widgets scraped with the article).
SHARE_LINES = frozenset(
    {
        "Share this with",
        "Email",
        "Facebook",
        "Messenger",
        "Twitter",
        "Pinterest",
        "WhatsApp",
        "Linkedin",
        "LinkedIn",
        "Copy this link",
        "These are external links and will open in a new window",
    }
)
_SUMMARY_FIELD = re.compile(r"\[SN\](URL|TITLE|FIRST-SENTENCE|RESTBODY)\[SN\]")


@dataclass(frozen=True)
class Article:
    id: str
    document: str
    summary: str
    url: str | None = None


def process_url(url: str) -> tuple[str, ...]:
    """The paper's topic of a BBC URL (see the module docstring for its quirks)."""
    parts = url.rstrip("/").split("/")[-3:]
    if parts[-1].isdigit():
        parts = parts[:-1]
    else:
        parts[-1] = parts[-1].split("-")[0]
    if parts and parts[0].startswith("www"):
        parts = parts[1:]
    return tuple(parts)


def parse_summary_file(path: Path) -> Article:
    """A `bbc-summary-data` file: [SN]URL[SN] / TITLE / FIRST-SENTENCE / RESTBODY sections."""
    text = path.read_text(encoding="utf-8")
    pieces = _SUMMARY_FIELD.split(text)
    sections = {pieces[i]: pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
    if "FIRST-SENTENCE" not in sections or "RESTBODY" not in sections:
        raise UserError(
            f"{path}: not a bbc-summary-data file (needs [SN]FIRST-SENTENCE[SN] and "
            "[SN]RESTBODY[SN] sections); download the XSum release again"
        )
    body = [line for line in sections["RESTBODY"].splitlines() if line.strip() not in SHARE_LINES]
    return Article(
        path.stem, "\n".join(body).strip(), sections["FIRST-SENTENCE"], sections.get("URL")
    )


def articles_from_rows(rows: Iterable[dict[str, Any]], where: str) -> list[Article]:
    """Hub or JSON-lines rows with `id`, `document`, `summary` (and optionally `url`)."""
    return [
        Article(
            str(field(row, "id", f"{where}, row {i}")),
            field(row, "document", f"{where}, row {i}"),
            field(row, "summary", f"{where}, row {i}"),
            row.get("url"),
        )
        for i, row in enumerate(rows)
    ]


def read_url_map(path: Path) -> dict[str, str]:
    urls = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UserError(f"{path}, line {number}: expected `URL ID`, got {line.strip()!r}")
            urls[parts[1]] = parts[0]
    return urls


@TASKS.register("xsum")
class XSum(Task):
    name = "xsum"
    version = "1"
    description = "XSum BBC articles -> one-sentence summaries; official 90/5/5 split (test 11,334)"
    eval_splits: tuple[EvalSplit, ...] = (EvalSplit("test", ood=False),)
    suite = "xsum"

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        articles = self.articles(split, data_dir)
        return [Example(a.document, (a.summary,)) for a in articles if a.document]

    def articles(self, split: str, data_dir: Path | None) -> list[Article]:
        return list(_articles(self._source(data_dir), OFFICIAL[split], data_dir))

    def _source(self, data_dir: Path | None) -> str:
        root = data_root(data_dir)
        if (root / "xsum" / "test.jsonl").exists():
            return "jsonl"
        if (root / "xsum" / "bbc-summary-data").is_dir():
            return "summary"
        if data_dir is not None:
            raise UserError(
                f"task {self.name!r}: {root / 'xsum'} has neither {{train,validation,test}}.jsonl "
                "nor bbc-summary-data/ with the split file; see `python -m bench data download "
                "xsum` for the layout"
            )
        return "hub"

    def data_files(self, data_dir: Path | None) -> list[Path]:
        root = data_root(data_dir)
        source = self._source(data_dir)
        names = {
            "jsonl": [f"xsum/{s}.jsonl" for s in OFFICIAL.values()],
            "summary": [SPLIT_FILE],
            "hub": [],
        }[source]
        return [root / n for n in [*names, URL_MAP] if (root / n).exists()]

    def recipe(self) -> dict[str, object]:
        return {"split": "official 90/5/5", "sources": "jsonl | bbc-summary-data | " + HUB_ID}


@cache
def _articles(source: str, official_split: str, data_dir: Path | None) -> tuple[Article, ...]:
    if source == "hub":
        rows = hub_rows("xsum", HUB_ID, official_split)
        return tuple(articles_from_rows(rows, f"hub {HUB_ID}/{official_split}"))
    if source == "jsonl":
        path = require(data_dir, f"xsum/{official_split}.jsonl", "xsum")
        return tuple(articles_from_rows((r for _, r in read_jsonl(path)), str(path)))
    split_file = require(data_dir, SPLIT_FILE, "xsum")
    ids = read_json(split_file)
    if not isinstance(ids, dict) or official_split not in ids:
        raise UserError(f"{split_file}: no {official_split!r} id list; is this the official file?")
    folder = data_root(data_dir) / "xsum" / "bbc-summary-data"
    missing = [i for i in ids[official_split] if not (folder / f"{i}.summary").exists()]
    if missing:
        raise UserError(
            f"{folder}: {len(missing)} of the {len(ids[official_split])} {official_split} "
            f"articles are missing (first: {missing[0]}.summary); unpack the whole XSum release"
        )
    return tuple(parse_summary_file(folder / f"{i}.summary") for i in ids[official_split])


class XSumTopics(XSum):
    """XSum restricted by topic: training topics in train/dev, held-out topics in the OOD test."""

    train_topic: ClassVar[Callable[[tuple[str, ...]], bool]]
    split_topics: ClassVar[dict[str, Callable[[tuple[str, ...]], bool]]]

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        official = TRAIN if split == TRAIN else DEV if split == DEV else "test"
        articles = [a for a in self.articles(official, data_dir) if a.document]
        urls = self._urls(articles, data_dir)
        keep = self.split_topics.get(split, type(self).train_topic)
        chosen = [a for a in articles if keep(process_url(urls[a.id]))]
        if official == "test" and len(chosen) > TEST_SAMPLE:
            picked = random.Random(f"{self.name}:{split}").sample(range(len(chosen)), TEST_SAMPLE)
            chosen = [chosen[i] for i in sorted(picked)]
        return [Example(a.document, (a.summary,)) for a in chosen]

    def _urls(self, articles: list[Article], data_dir: Path | None) -> dict[str, str]:
        urls = {a.id: a.url for a in articles if a.url}
        if len(urls) < len(articles):
            path = data_root(data_dir) / URL_MAP
            if not path.exists():
                raise UserError(
                    f"task {self.name!r} needs each article's URL for its topic: {path} not found; "
                    "run `python -m bench data download xsum` or pass --data-dir DIR holding "
                    f"{URL_MAP}"
                )
            urls = {**_url_map(path), **urls}
        missing = [a.id for a in articles if a.id not in urls]
        if missing:
            raise UserError(
                f"task {self.name!r}: no URL for {len(missing)} articles (first id {missing[0]}) "
                f"in {data_root(data_dir) / URL_MAP}; download the full map file again"
            )
        return urls

    def recipe(self) -> dict[str, object]:
        return {
            **super().recipe(),
            "topic": "process_url: last 3 URL parts, numeric id dropped, www host dropped",
            "test_sample": f"{TEST_SAMPLE}, random.Random('{self.name}:<split>'), file order kept",
            "splits": self.__doc__,
        }


@cache
def _url_map(path: Path) -> dict[str, str]:
    return read_url_map(path)


def _is_news(topic: tuple[str, ...]) -> bool:
    return topic[:1] == ("news",)


def _is_sport(topic: tuple[str, ...]) -> bool:
    return topic[:1] == ("sport",)


NEWS_SEEN = frozenset({("news", "uk"), ("news", "business"), ("news", "world")})


def _is_seen_news(topic: tuple[str, ...]) -> bool:
    return topic[:2] in NEWS_SEEN


def _is_unseen_news(topic: tuple[str, ...]) -> bool:
    return _is_news(topic) and topic[:2] not in NEWS_SEEN


@TASKS.register("xsum-news-sports")
class XSumNewsSports(XSumTopics):
    """Train and dev on news articles; test on sport (OOD) and on news (ID)."""

    name = "xsum-news-sports"
    description = "XSum, train on news, test on sport (OOD, <= 8,000 seeded) and news (ID)"
    eval_splits = (EvalSplit("test_news", ood=False), EvalSplit("test_sport", ood=True))
    train_topic = staticmethod(_is_news)
    split_topics: ClassVar[dict[str, Callable[[tuple[str, ...]], bool]]] = {
        "test_news": _is_news,
        "test_sport": _is_sport,
    }


@TASKS.register("xsum-within-news")
class XSumWithinNews(XSumTopics):
    """Train and dev on news/uk, news/business, news/world; test on other news topics (OOD)."""

    name = "xsum-within-news"
    description = "XSum news, train on uk/business/world, test on other news topics (OOD)"
    eval_splits = (EvalSplit("test_seen", ood=False), EvalSplit("test_unseen", ood=True))
    train_topic = staticmethod(_is_seen_news)
    split_topics: ClassVar[dict[str, Callable[[tuple[str, ...]], bool]]] = {
        "test_seen": _is_seen_news,
        "test_unseen": _is_unseen_news,
    }
