"""Our beam search equals its references token for token: `transformers`' `generate` under
`rule: hf`, and the transcription of the authors' search (`tests/authors_search.py`) under
`rule: authors`, over beams x length penalty x early stopping x output limits short enough to
cut hypotheses, on batches padded as ours are; and each comparison fails when its rule is
broken (the mutation test)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LogitsProcessor, LogitsProcessorList

from bench.engine import generation
from bench.engine.adapted import AdaptedLM
from bench.engine.encoding import encode_source
from bench.engine.generation import beam_search, pad
from bench.spec.settings import DecodeConfig
from tests.authors_search import authors_beam_search
from tests.builders import build, build_on_mini, tiny_bart

SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian | area : riverside",
    "Varhaton : country : Avalia",
    "Ivo Silfa : birthPlace : Torlo | Ivo Silfa : club : Kemton Wolves",
]
BEAMS, PENALTIES, LIMITS = (1, 3, 5), (0.0, 0.6, 1.0, 2.0), (4, 14)
STOPS: dict[str, tuple[bool | str, ...]] = {"hf": (False, True, "never"), "authors": (False, True)}
CPU = torch.device("cpu")


def tiny_gpt2(tokenizer) -> GPT2LMHeadModel:
    """A random two-layer GPT-2 over the mini tokenizer's ids; its wide initialization makes the
    next-token distributions peaked, as a trained model's are."""
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=2, n_head=2,
        initializer_range=0.2, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def models() -> dict[str, tuple[AdaptedLM, object]]:
    mini, tokenizer = build_on_mini("finetune")
    return {
        "mini": (mini.eval(), tokenizer),
        "random-gpt2": (build("finetune", tiny_gpt2(tokenizer)).eval(), tokenizer),
        "random-bart": (build("finetune", tiny_bart(tokenizer)).eval(), tokenizer),
    }


def settings(rule: str, beams=BEAMS, penalties=PENALTIES) -> Iterator[DecodeConfig]:
    for k, lp, stop, limit in itertools.product(beams, penalties, STOPS[rule], LIMITS):
        yield DecodeConfig(
            rule=rule, num_beams=k, length_penalty=lp, early_stopping=stop, max_new_tokens=limit,
            batch_size=len(SOURCES),
        )  # fmt: skip


def batch(model: AdaptedLM, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts, padded as we decode them: GPT-2's are raw text to continue (no eos, which
    a trained LM answers with an eos at once), left-padded; BART's are framed sources,
    right-padded."""
    if model.is_encoder_decoder:
        return pad([encode_source(tokenizer, s, 512) for s in SOURCES], tokenizer.eos_token_id,
                   left=False)  # fmt: skip
    return pad([tokenizer.encode(" " + s) for s in SOURCES], tokenizer.eos_token_id, left=True)


def eos_bias(new: int, prompt: torch.Tensor) -> torch.Tensor:
    """What `EosSooner` adds to the eos log-probability after `new` tokens: growing at a
    different rate per prompt, so that prompts end at many steps and eos competes in beams."""
    return (RATE * new * (1 + prompt % 3) - 3.0).float()


RATE = 0.45


class EosSooner:
    """Our scorer with `eos_bias` added to each row's eos log-probability, following the beam."""

    def __init__(self, inner, eos: int) -> None:
        self.inner, self.eos = inner, eos

    def _biased(self, logprobs: torch.Tensor) -> torch.Tensor:
        logprobs = logprobs.clone()
        logprobs[:, self.eos] += eos_bias(self.new, self.prompt)
        return logprobs

    def prefill(self, input_ids, attention_mask):
        self.prompt, self.new = torch.arange(len(input_ids)), 0
        return self._biased(self.inner.prefill(input_ids, attention_mask))

    def expand(self, times):
        self.inner.expand(times)
        self.prompt = self.prompt.repeat_interleave(times)

    def step(self, tokens):
        self.new += 1
        return self._biased(self.inner.step(tokens))

    def reorder(self, rows):
        self.inner.reorder(rows)
        self.prompt = self.prompt[rows]


class EosSoonerProcessor(LogitsProcessor):
    """The same bias inside `generate`: its rows are prompt-major, `beams` each."""

    def __init__(self, eos: int, beams: int, prompt_width: int) -> None:
        self.eos, self.beams, self.width = eos, beams, prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor):
        prompt = torch.arange(len(input_ids)) // self.beams
        scores[:, self.eos] += eos_bias(input_ids.shape[1] - self.width, prompt)
        return scores


def new_tokens(row: torch.Tensor, stops: set[int]) -> list[int]:
    out = []
    for token in row.tolist():
        if token in stops:
            break
        out.append(token)
    return out


def by_generate(model: AdaptedLM, tokenizer, config: DecodeConfig) -> list[list[int]]:
    ids, mask = batch(model, tokenizer)
    width = 1 if model.is_encoder_decoder else ids.shape[1]  # BART's decoder: the start token
    bias = EosSoonerProcessor(tokenizer.eos_token_id, config.num_beams, width)
    out = model.base.generate(
        input_ids=ids, attention_mask=mask, do_sample=False, num_beams=config.num_beams,
        length_penalty=config.length_penalty, early_stopping=config.early_stopping,
        max_new_tokens=config.max_new_tokens, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, forced_bos_token_id=None, forced_eos_token_id=None,
        no_repeat_ngram_size=0, num_return_sequences=1,
        logits_processor=LogitsProcessorList([bias]),
    )  # fmt: skip
    stops = {tokenizer.eos_token_id, model.base.config.pad_token_id}
    return [new_tokens(row[width:], stops) for row in out]


def by_authors(model: AdaptedLM, tokenizer, config: DecodeConfig) -> list[list[int]]:
    ids, mask = batch(model, tokenizer)
    counted = torch.ones(len(ids), dtype=torch.long) if model.is_encoder_decoder else None
    scorer = EosSooner(model.scorer(), tokenizer.eos_token_id)
    return authors_beam_search(scorer, ids, mask, tokenizer.eos_token_id, config,
                               counted=counted)  # fmt: skip


def by_us(model: AdaptedLM, tokenizer, config: DecodeConfig) -> list[list[int]]:
    ids, mask = batch(model, tokenizer)
    counted = torch.ones(len(ids), dtype=torch.long) if model.is_encoder_decoder else None
    scorer = EosSooner(model.scorer(), tokenizer.eos_token_id)
    found = beam_search(scorer, ids, mask, tokenizer.eos_token_id, config, counted=counted)
    return [h.tokens for h in found]


REFERENCES = {"hf": by_generate, "authors": by_authors}


def compare(models, rule: str, configs: list[DecodeConfig], only: str | None = None):
    """(prompts compared, those where ours and the reference differ, prompts whose output was
    cut at max_new_tokens)."""
    cases, wrong, cut = 0, [], 0
    for name, (model, tokenizer) in models.items():
        if only is not None and name != only:
            continue
        for config in configs:
            ours = by_us(model, tokenizer, config)
            theirs = REFERENCES[rule](model, tokenizer, config)
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
                cases += 1
                cut += len(b) == config.max_new_tokens
                if a != b:
                    setting = config.model_dump(exclude={"batch_size", "batch_tokens"})
                    wrong.append(f"{name} prompt {i} {setting}: {a} != {b}")
    return cases, wrong, cut


@pytest.mark.parametrize("rule", ["hf", "authors"])
def test_our_search_equals_its_reference_token_for_token(models, rule):
    cases, wrong, cut = compare(models, rule, list(settings(rule)))
    assert cases >= 400 and cut >= 50, (cases, cut)
    assert not wrong, f"{len(wrong)} of {cases} differ, e.g. {wrong[:2]}"


def _hf_length_plus_one(self, scores, counted, step):
    if self.name == "hf":
        return (scores / ((step + 2) ** self.lp)).double()
    return ORIGINAL["normalized"](self, scores, counted, step)


def _authors_without_prompt(self, scores, counted, step):
    if self.name == "authors":
        return scores.double() / self.pow[1 + step][None, None]
    return ORIGINAL["normalized"](self, scores, counted, step)


def _eos_from_all_candidates(self, is_eos, step, beams):
    return ORIGINAL["ends"](self, is_eos, step, is_eos.shape[1])


def _cut_as_if_it_had_an_eos(self, scores, counted):
    if self.name == "authors":
        return scores.double() / self.pow[counted + self.steps + 1][:, None]
    return None


def _done_only_at_the_limit(self, worst, best_candidate, best_live, counted, step):
    return torch.zeros_like(worst, dtype=torch.bool)


ORIGINAL = {name: getattr(generation._Rule, name) for name in ("normalized", "ends")}
MUTATIONS = {
    "hf scores by generated length + 1": ("normalized", _hf_length_plus_one, "hf"),
    "authors score without the prompt": ("normalized", _authors_without_prompt, "authors"),
    "hf admits eos from all 2k": ("ends", _eos_from_all_candidates, "hf"),
    "authors admit eos from all 2k": ("ends", _eos_from_all_candidates, "authors"),
    "authors cut beams scored one longer": ("open_beams", _cut_as_if_it_had_an_eos, "authors"),
    "hf never stops early": ("done", _done_only_at_the_limit, "hf"),
    "authors never stop early": ("done", _done_only_at_the_limit, "authors"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_each_comparison_fails_when_its_rule_is_broken(models, monkeypatch, mutation):
    method, replacement, rule = MUTATIONS[mutation]
    monkeypatch.setattr(generation._Rule, method, replacement)
    configs = list(settings(rule, beams=(3, 5), penalties=(0.6, 2.0)))
    _, wrong, _ = compare(models, rule, configs)
    assert wrong, f"{mutation}: no case told it apart"
