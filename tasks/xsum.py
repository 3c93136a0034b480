"""XSum (Narayan et al., 2018) and the paper's unseen-topic splits of it.

Articles come from one of, under `DIR/xsum/`:
- `{train,validation,test}.jsonl`: one `{"id", "document", "summary"}` object per line (the hub
  dataset's fields, e.g. saved from `datasets`; an optional `url` field is used for topics);
- `bbc-summary-data/<id>.summary` (the authors' release) with the official split file
  `XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json`: the document is RESTBODY without the share lines, the
  summary FIRST-SENTENCE, as the hub dataset builds them;
- or, with no data dir, the hub dataset `EdinburghNLP/xsum`.

Topic splits need each article's URL: from the `.summary` files or `url` fields, else from the URL
files the authors' repository ships under `DIR/xsum/`: the id -> URL map
`XSum-WebArxiveUrls-BBCids.txt` (lines `URL ID`) and/or URL lists `XSum-WebArxiveUrls.txt` (and
`XSum-WebArxiveUrls_*.txt`, one URL a line), whose BBC id is the number ending the URL (the
authors' README: "Each article comes with a unique identifier in its URL"); the map wins ties.
The topic of a URL is the paper's `process_url` (PrefixTuning `topic_url_process.py`): the last
three path components; a numeric last one is dropped, any other is cut to its first `-`-token
(dropped when it has no `-`); a first component holding `www` (the host) is dropped:
`.../news/uk-england-4006` -> (news, uk), `.../sport/football/3726` -> (sport, football), old
`.../sport/0/football/1` -> (0, football), which the paper does not count as sport.
- `xsum-news-sports`: train and dev on topics starting with news; `test_sport` (OOD) on topics
  starting with sport, with `test_news` (ID, this project's addition) on news.
- `xsum-within-news`: train and dev on exactly (news, uk), (news, business), (news, world);
  `test_unseen` (OOD) on the other news topics, with `test_seen` (ID) on the training topics.
Train and dev keep every matching article of the official train and validation splits; the test
splits draw from the official test split, and one holding more than 8,000 matching articles is
cut to a sample of 8,000 (the paper's cap, `np.random.choice` without a seed), here seeded by
`random.Random("<task>:<split>")` and kept in file order. `pool_sizes` counts each split from the
split file and the URL files alone, so `bench data stats` shows them without the article text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

from bench.data.files import data_root, field, read_json, read_jsonl, regular, require
from bench.data.hub import hub_rows
from bench.errors import UserError
from bench.spec.registry import TASKS
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, Task

SPLIT_FILE = "xsum/XSum-TRAINING-DEV-TEST-SPLIT-90-5-5.json"
URL_MAP = "xsum/XSum-WebArxiveUrls-BBCids.txt"
URL_LIST = "xsum/XSum-WebArxiveUrls.txt"
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
_TRAILING_ID = re.compile(r"(\d+)/?$")


@dataclass(frozen=True)
class Article:
    id: str
    document: str
    summary: str
    url: str | None = None


def process_url(url: str) -> tuple[str, ...]:
    """The paper's topic of a BBC URL, quirks included (see the module docstring): the splits
    are defined by it, so a cleaner parse would move articles between train and test."""
    parts = url.strip("/").split("/")[-3:]
    last = parts.pop()
    if parts and "www" in parts[0]:
        parts = parts[1:]
    if not last.isdigit() and "-" in last:
        parts.append(last.split("-")[0])
    return tuple(part for part in parts if part)


def parse_summary_file(path: Path) -> Article:
    """A `bbc-summary-data` file: [SN]URL[SN] / TITLE / FIRST-SENTENCE / RESTBODY sections."""
    text = regular(path).read_text(encoding="utf-8")
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


def read_url_file(path: Path) -> dict[str, str]:
    """id -> URL from `URL ID` lines (the -BBCids map) or bare URL lines (the URL lists), where
    the id is the number ending the URL."""
    urls = {}
    with regular(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            match = _TRAILING_ID.search(parts[0]) if len(parts) == 1 else None
            if len(parts) == 2:
                urls[parts[1]] = parts[0]
            elif match:
                urls[match.group(1)] = parts[0]
            elif parts:
                raise UserError(
                    f"{path}, line {number}: expected `URL ID` or a URL ending in its BBC id, "
                    f"got {line.strip()!r}; download the file again"
                )
    return urls


def url_files(root: Path) -> list[Path]:
    """The URL files under `root/xsum/`, the id -> URL map first (it wins where they disagree)."""
    lists = sorted((root / "xsum").glob("XSum-WebArxiveUrls*.txt"))
    return sorted(lists, key=lambda path: path != root / URL_MAP)


@cache
def _url_map(files: tuple[Path, ...]) -> dict[str, str]:
    urls: dict[str, str] = {}
    for path in reversed(files):
        urls.update(read_url_file(path))
    return urls


@cache
def _split_ids(path: Path) -> dict[str, list[str]]:
    """The official split file's id lists, read once per process (2.7 MB, used by every split)."""
    ids = read_json(path)
    if not (isinstance(ids, dict) and all(isinstance(ids.get(s), list) for s in OFFICIAL.values())):
        raise UserError(
            f"{path}: expected the lists {', '.join(OFFICIAL.values())} of BBC ids; is this the "
            "official split file?"
        )
    return ids


@TASKS.register("xsum")
class XSum(Task):
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
        return [root / n for n in names if (root / n).exists()] + url_files(root)

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
    ids = _split_ids(require(data_dir, SPLIT_FILE, "xsum"))
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

    version = "2"  # 2: the paper's process_url and exact seen-topic match, edge cases included
    train_topic: ClassVar[Callable[[tuple[str, ...]], bool]]
    split_topics: ClassVar[dict[str, Callable[[tuple[str, ...]], bool]]]

    def load(self, split: str, data_dir: Path | None) -> list[Example]:
        self.check_split(split)
        articles = [a for a in self.articles(_official(split), data_dir) if a.document]
        urls = self._urls(articles, data_dir)
        keep = self._topic(split)
        chosen = [a for a in articles if keep(process_url(urls[a.id]))]
        if _official(split) == "test" and len(chosen) > TEST_SAMPLE:
            picked = random.Random(f"{self.name}:{split}").sample(range(len(chosen)), TEST_SAMPLE)
            chosen = [chosen[i] for i in sorted(picked)]
        return [Example(a.document, (a.summary,)) for a in chosen]

    def pool_sizes(self, data_dir: Path | None) -> dict[str, dict[str, int | str]]:
        """Each split's size from the split file and the URL files alone (no article text):
        the official split it draws from (`from`), its `ids`, how many have a URL (`known`), how
        many of those have the split's topic (`pool`), and `size` after the test sample. Counted
        before `load` drops empty documents; {} when the split file or every URL file is absent."""
        root = data_root(data_dir)
        files = url_files(root)
        if not files or not (root / SPLIT_FILE).exists():
            return {}
        ids, urls = _split_ids(root / SPLIT_FILE), _url_map(tuple(files))
        sizes: dict[str, dict[str, int | str]] = {}
        for split in self.data_splits():
            official = OFFICIAL[_official(split)]
            known = [urls[i] for i in ids[official] if i in urls]
            pool = sum(self._topic(split)(process_url(url)) for url in known)
            cap = TEST_SAMPLE if _official(split) == "test" else pool
            sizes[split] = {
                "from": official,
                "ids": len(ids[official]),
                "known": len(known),
                "pool": pool,
                "size": min(pool, cap),
            }
        return sizes

    def _topic(self, split: str) -> Callable[[tuple[str, ...]], bool]:
        return self.split_topics.get(split, type(self).train_topic)

    def _urls(self, articles: list[Article], data_dir: Path | None) -> dict[str, str]:
        urls = {a.id: a.url for a in articles if a.url}
        folder, files = data_root(data_dir) / "xsum", url_files(data_root(data_dir))
        if len(urls) < len(articles):
            if not files:
                raise UserError(
                    f"task {self.name!r} needs each article's URL for its topic: no "
                    f"{Path(URL_MAP).name} or {Path(URL_LIST).name} in {folder}; run `python -m "
                    "bench data download xsum` or pass --data-dir DIR holding either"
                )
            urls = {**_url_map(tuple(files)), **urls}
        missing = [a.id for a in articles if a.id not in urls]
        if missing:
            raise UserError(
                f"task {self.name!r}: no URL for {len(missing)} of {len(articles)} articles "
                f"(first id {missing[0]}) in {', '.join(p.name for p in files)}; put the full "
                f"{Path(URL_MAP).name} (a line per article) in {folder}"
            )
        return urls

    def recipe(self) -> dict[str, object]:
        return {
            **super().recipe(),
            "topic": "process_url (PrefixTuning topic_url_process.py), quirks kept",
            "test_sample": f"{TEST_SAMPLE}, random.Random('{self.name}:<split>'), file order kept",
            "splits": self.__doc__,
        }


def _official(split: str) -> str:
    """The official split a topic split draws from: train, dev, or test for every test split."""
    return split if split in (TRAIN, DEV) else "test"


def _is_news(topic: tuple[str, ...]) -> bool:
    return topic[:1] == ("news",)


def _is_sport(topic: tuple[str, ...]) -> bool:
    return topic[:1] == ("sport",)


NEWS_SEEN = frozenset({("news", "uk"), ("news", "business"), ("news", "world")})


def _is_seen_news(topic: tuple[str, ...]) -> bool:
    """Exact membership, as the paper's: (news, uk, x) would be an unseen topic."""
    return topic in NEWS_SEEN


def _is_unseen_news(topic: tuple[str, ...]) -> bool:
    return _is_news(topic) and topic not in NEWS_SEEN


@TASKS.register("xsum-news-sports")
class XSumNewsSports(XSumTopics):
    """Train and dev on news articles; test on sport (OOD) and on news (ID)."""

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

    description = "XSum news, train on uk/business/world, test on other news topics (OOD)"
    eval_splits = (EvalSplit("test_seen", ood=False), EvalSplit("test_unseen", ood=True))
    train_topic = staticmethod(_is_seen_news)
    split_topics: ClassVar[dict[str, Callable[[tuple[str, ...]], bool]]] = {
        "test_seen": _is_seen_news,
        "test_unseen": _is_unseen_news,
    }
