"""The on-device beam search (`rule: authors`) returns exactly the hypotheses of the authors'
search as transcribed from their code (`tests/authors_search.py`: Python lists, one prompt's
hypotheses at a time), run on the same batch, for every method, BART and the hybrids included,
and for hundreds of random settings of a synthetic scorer. `test_decode_rules.py` checks both
rules against their references on plain models; this checks the search over every method's
cache.

Each method is briefly trained on mini-e2e and decoded on a left-padded batch of prompts of
different lengths, the reference with the cache as it was (reordered, then appended to by
`torch.cat`: no `ReorderOnAppend`). A mini-tiny model trained for seconds either ends at once
or never, so its scorer is wrapped (`EndingSooner`) to make prompts end at many different
steps: rows leave the batch while the others go on, through each method's real cache.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from bench.engine.adapted import AdaptedLM, BuildContext, Scorer
from bench.engine.encoding import encode_source
from bench.engine.generation import beam_search, newline_tokens, pad
from bench.engine.loading import load_model
from bench.engine.training import train
from bench.spec.registry import TASKS
from bench.spec.settings import DecodeConfig, TrainConfig
from bench.spec.task import TRAIN, training_pairs
from tests.authors_search import authors_beam_search
from tests.builders import build, build_on_mini, tiny_bart

CPU = torch.device("cpu")
CONFIGS = [
    DecodeConfig(rule="authors", num_beams=5, max_new_tokens=40, min_new_tokens=3),
    DecodeConfig(rule="authors", num_beams=1, max_new_tokens=30, min_new_tokens=2),
    DecodeConfig(rule="authors", num_beams=3, max_new_tokens=9, min_new_tokens=4, length_penalty=2),
    DecodeConfig(
        rule="authors",
        num_beams=4,
        max_new_tokens=24,
        min_new_tokens=5,
        length_penalty=0.0,
        early_stopping=True,
    ),
    DecodeConfig(rule="authors", num_beams=2, max_new_tokens=1),
]
METHOD_SETTINGS = {
    "finetune": {},
    "finetune-top": {"k": 1},
    "prefix": {"length": 3, "mlp_hidden": 16},
    "infix": {"length": 3, "mlp_hidden": 16},
    "prompt": {"length": 3, "mlp_hidden": 16},
    "lora": {"rank": 4},
    "adapter": {},
}
LR = {"finetune": 1e-3, "finetune-top": 1e-3, "cocktail": 1e-3}


@pytest.fixture(scope="module")
def world():
    task = TASKS.get("mini-e2e")()
    pairs = training_pairs(task.load(TRAIN, None))[:96]
    tokenizer = load_model("mini-tiny", seed=0).tokenizer
    sources = list(dict.fromkeys(ex.source for ex in task.load("test", None)))[:12]
    return pairs, tokenizer, sources


def trained(method: str, world, context: BuildContext | None = None, **settings) -> AdaptedLM:
    pairs, tokenizer, _ = world
    model, _ = build_on_mini(method, seed=0, context=context, **settings)
    config = TrainConfig(epochs=1, batch_size=8, lr=LR.get(method, 5e-3))
    train(model, tokenizer, pairs, [], config, seed=0, device=CPU)
    model.finalize()
    return model.eval()


class EndingSooner:
    """A scorer that makes a wrapped one end rows at different steps: eos gains
    `rate * steps so far * (1 + prompt % 3)` in log space before renormalizing. It follows
    the beam like the wrapped scorer's cache does."""

    def __init__(self, inner: Scorer, eos: int, rate: float) -> None:
        self.inner, self.eos, self.rate = inner, eos, rate

    def _nudged(self, logprobs: torch.Tensor) -> torch.Tensor:
        logprobs = logprobs.clone()
        logprobs[:, self.eos] += self.rate * self.steps * (1 + self.prompt % 3)
        return torch.log_softmax(logprobs, dim=-1)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.prompt = torch.arange(len(input_ids))
        self.steps = torch.zeros(len(input_ids))
        return self._nudged(self.inner.prefill(input_ids, attention_mask))

    def expand(self, times: int) -> None:
        self.inner.expand(times)
        self.prompt = self.prompt.repeat_interleave(times)
        self.steps = self.steps.repeat_interleave(times)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.steps = self.steps + 1
        return self._nudged(self.inner.step(tokens))

    def reorder(self, rows: torch.Tensor) -> None:
        self.inner.reorder(rows)
        self.prompt, self.steps = self.prompt[rows], self.steps[rows]


def assert_same_hypotheses(model: AdaptedLM, tokenizer, sources: list[str], left: bool = True):
    """Ours equals the reference in every configuration; returns the hypotheses' lengths."""
    rows = [encode_source(tokenizer, s, 512) for s in sources]
    ids, mask = pad(rows, tokenizer.eos_token_id, left)
    counted = None if left else torch.ones(len(rows), dtype=torch.long)  # BART: start token
    eos = tokenizer.eos_token_id
    lengths = set()
    for config in CONFIGS:
        for banned in ((), newline_tokens(tokenizer)[:3]):
            scorer = EndingSooner(model.scorer(), eos, 0.2)
            ours = [h.tokens for h in beam_search(scorer, ids, mask, eos, config, banned, counted)]
            scorer = EndingSooner(model.scorer(), eos, 0.2)
            with mock.patch("bench.engine.adapted._reorder_on_append", lambda cache: None):
                theirs = authors_beam_search(scorer, ids, mask, eos, config, banned, counted)
            assert ours == theirs, (config, banned)
            lengths |= {len(h) for h in ours}
    return lengths


@pytest.mark.parametrize("method", sorted(METHOD_SETTINGS))
def test_every_method_decodes_as_the_authors_search(world, method):
    model = trained(method, world, **METHOD_SETTINGS[method])
    lengths = assert_same_hypotheses(model, world[1], world[2])
    assert len(lengths) > 4  # prompts stopped at many different steps


def test_hybrids_decode_as_the_authors_search(world):
    _, tokenizer, sources = world
    prefix = trained("prefix", world, **METHOD_SETTINGS["prefix"])
    finetune = trained("finetune", world)
    members = BuildContext(tokenizer, {"prefix": prefix, "finetune": finetune})
    for mix in ("probability", "loglinear"):
        ensemble = build("ensemble", finetune.base, members, lam=0.3, mix=mix)
        assert_same_hypotheses(ensemble.eval(), tokenizer, sources)
    cocktail = trained("cocktail", world, BuildContext(tokenizer, {"teacher": prefix}), beta=0.5)
    assert_same_hypotheses(cocktail, tokenizer, sources)


@pytest.mark.parametrize("method", ["finetune", "prefix"])
def test_bart_decodes_as_the_authors_search(world, method):
    _, tokenizer, sources = world
    settings = {"length": 3, "mlp_hidden": 16} if method == "prefix" else {}
    torch.manual_seed(1)
    model = build(method, tiny_bart(tokenizer), **settings)
    assert_same_hypotheses(model.eval(), tokenizer, sources, left=False)


class MarkovScorer:
    """A scorer without a model, over a vocabulary of 12: each row's next-token log-probabilities
    come from a fixed random table indexed by its last token, eos growing likelier with each
    step. With so few tokens, banned ones and `min_new_tokens` leave fewer live candidates than
    the search asks for, so dead candidates (-inf) are ranked and padded too."""

    VOCAB, EOS = 12, 11

    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.randn(self.VOCAB, self.VOCAB, generator=generator) * 2
        self.slope = float(torch.rand(1, generator=generator)) * 0.6

    def _logprobs(self) -> torch.Tensor:
        logits = self.table[self.last].clone()
        logits[:, self.EOS] += self.slope * self.steps - 1.0
        return torch.log_softmax(logits, dim=-1)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.last, self.steps = input_ids[:, -1] % self.VOCAB, torch.zeros(len(input_ids))
        return self._logprobs()

    def expand(self, times: int) -> None:
        self.last = self.last.repeat_interleave(times)
        self.steps = self.steps.repeat_interleave(times)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.last, self.steps = tokens, self.steps + 1
        return self._logprobs()

    def reorder(self, rows: torch.Tensor) -> None:
        self.last, self.steps = self.last[rows], self.steps[rows]


def test_random_settings_decode_as_the_authors_search():
    rng = torch.Generator().manual_seed(0)

    def draw(high: int) -> int:
        return int(torch.randint(high, (1,), generator=rng))

    stopped_early = 0
    for seed in range(300):
        steps = 1 + draw(14)
        config = DecodeConfig(
            rule="authors",
            early_stopping=bool(draw(2)),
            num_beams=1 + draw(6),
            max_new_tokens=steps,
            min_new_tokens=draw(steps + 1),
            length_penalty=[0.0, 0.5, 1.0, 2.0, -0.5][draw(5)],
        )
        banned = [[], [3], [0, 5, 7]][draw(3)]
        ids = torch.randint(MarkovScorer.VOCAB, (1 + draw(7), 3), generator=rng)
        mask = torch.ones_like(ids)
        eos = MarkovScorer.EOS
        ours = [h.tokens for h in beam_search(MarkovScorer(seed), ids, mask, eos, config, banned)]
        assert ours == authors_beam_search(MarkovScorer(seed), ids, mask, eos, config, banned)
        stopped_early += any(len(h) < steps for h in ours)
    assert stopped_early > 100
