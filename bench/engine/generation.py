"""Batched decoding: beam search (greedy is a beam of one) over a next-token scorer.

Our own loop rather than `model.generate`: a prefix lives in the key/value cache, which
`generate` handles differently across transformers versions, and the hybrid methods need to mix
several models' next-token distributions inside the beam. A `Scorer` (an adapted model's
`scorer()`) is anything that can prefill prompts, score one more token per row, and follow the
beam's reordering. Which hypotheses win is a reference's rule, not ours (`DecodeConfig.rule`,
`_Rule`): `generate`'s or the paper code's, token for token (tests/engine/test_decode_rules.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, Scorer
from bench.engine.encoding import encode_source
from bench.engine.precision import autocast
from bench.progress import Progress, tracker
from bench.spec.settings import DecodeConfig


@dataclass(frozen=True)
class Hypothesis:
    """A prompt's best output: its token ids (no eos) and its score under the decode rule, the
    summed log-probability over length**length_penalty (the length the rule counts)."""

    tokens: list[int]
    score: float


@dataclass
class _Finished:
    """Each live prompt's best finished hypotheses so far, best first: their scores normalized
    by length (float64; -inf in an empty slot), ids and lengths."""

    scores: torch.Tensor  # [prompts, beams]
    tokens: torch.Tensor  # [prompts, beams, max_new_tokens]
    lengths: torch.Tensor  # [prompts, beams]

    @classmethod
    def empty(cls, prompts: int, beams: int, steps: int, device: torch.device) -> _Finished:
        return cls(
            torch.full((prompts, beams), -torch.inf, dtype=torch.float64, device=device),
            torch.zeros((prompts, beams, steps), dtype=torch.long, device=device),
            torch.zeros((prompts, beams), dtype=torch.long, device=device),
        )

    def merge(self, scores: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> None:
        """Rank new hypotheses (-inf: none) with the kept ones and keep the best `beams`. The
        sort is stable, so a new hypothesis that only ties the worst kept one is not kept, as in
        both references."""
        merged = torch.cat([self.scores, scores], dim=1)
        order = torch.sort(-merged, dim=1, stable=True).indices[:, : self.scores.shape[1]]
        self.scores = merged.gather(1, order)
        self.lengths = torch.cat([self.lengths, lengths], dim=1).gather(1, order)
        steps = self.tokens.shape[2]
        ids = torch.cat([self.tokens, tokens], dim=1)
        self.tokens = ids.gather(1, order[..., None].expand(-1, -1, steps))

    def keep(self, prompts: torch.Tensor) -> None:
        self.scores, self.tokens = self.scores[prompts], self.tokens[prompts]
        self.lengths = self.lengths[prompts]

    def best(self, prompts: torch.Tensor) -> list[Hypothesis]:
        """The best hypothesis of each of `prompts` (none: no ids, score -inf), in one transfer."""
        scores = self.scores[prompts, 0].tolist()
        lengths = self.lengths[prompts, 0].tolist()
        ids = self.tokens[prompts, 0].tolist()
        return [
            Hypothesis(row[:n] if math.isfinite(score) else [], score)
            for row, n, score in zip(ids, lengths, scores, strict=True)
        ]


def _continuing(
    rows: torch.Tensor,
    tokens: torch.Tensor,
    scores: torch.Tensor,
    ended: torch.Tensor,
    beams: int,
    eos_id: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The next live beams from each prompt's ranked candidates [prompts, 2 * beams]: the first
    `beams` that did not end, in rank order; a prompt with fewer pads with dead rows (its first
    row, eos, score -inf) that can never be chosen again."""
    live = ~ended
    rank = live.cumsum(dim=1) - 1
    kept = live & (rank < beams)
    order = torch.where(kept, rank, rows.shape[1]).sort(dim=1, stable=True).indices[:, :beams]
    picked = kept.gather(1, order)
    first_row = rows[:, :1] - rows[:, :1] % beams
    return (
        torch.where(picked, rows.gather(1, order), first_row),
        torch.where(picked, tokens.gather(1, order), eos_id),
        torch.where(picked, scores.gather(1, order), -torch.inf),
    )


class _Rule:
    """How a reference scores finished hypotheses and decides that a prompt is done.

    `hf` is `transformers`' `generate(num_beams=k)` as pinned (4.57, `generation/utils.py`:
    `_beam_search`, `_update_finished_beams`, `_check_early_stop_heuristic`): a hypothesis is
    divided by its generated length**lp, eos included; at `max_new_tokens` every top-k candidate
    ends; `early_stopping` false divides the best live beam by the current length, `never` by
    the longest possible (lp > 0), `true` stops once k hypotheses ended. It computes in float32,
    and so does this rule, op for op.

    `authors` is the search of the paper's code, github:XiangLi1999/PrefixTuning
    `transformers/src/transformers/generation_utils.py` (their vendored transformers 3.x):
    `BeamHypotheses.add` (lines 1055-1067) divides by the length of the whole sequence without
    its eos, the prompt included for GPT-2 (`counted`: its real tokens) and the start token for
    BART; `is_done` (1069-1082) divides the best of the 2k candidates by the current length;
    `_generate_beam_search` (649-906) admits an eos only among the top k and, at the limit,
    adds the beams still open (scored by the full length). Ranking is in float64, as their
    Python floats were. Both admit eos candidates ranked in the top k only.
    """

    def __init__(self, config: DecodeConfig, counted: torch.Tensor) -> None:
        self.name, self.early_stopping = config.rule, config.early_stopping
        self.lp, self.steps = config.length_penalty, config.max_new_tokens
        longest = int(counted.max()) + self.steps + 1
        self.pow = torch.tensor(
            [max(n, 1) ** self.lp for n in range(longest + 1)],
            dtype=torch.float64,
            device=counted.device,
        )  # Python's pow, as both references compute the penalty

    def ends(self, is_eos: torch.Tensor, step: int, beams: int) -> torch.Tensor:
        """Candidates [prompts, ranked] that end a hypothesis here: an eos among the top
        `beams` (both references pass over the others), and under `hf` every top candidate at
        the limit."""
        ranked = torch.arange(is_eos.shape[1], device=is_eos.device) < beams
        if self.name == "hf" and step == self.steps - 1:
            return ranked.expand_as(is_eos)
        return is_eos & ranked

    def normalized(self, scores: torch.Tensor, counted: torch.Tensor, step: int) -> torch.Tensor:
        """Scores [prompts, candidates] of hypotheses ending at `step`, over length**lp."""
        if self.name == "hf":
            return (scores / ((step + 1) ** self.lp)).double()
        return scores.double() / self.pow[counted + step][:, None]

    def done(
        self, worst: torch.Tensor, best_candidate: torch.Tensor, best_live: torch.Tensor,
        counted: torch.Tensor, step: int,
    ) -> torch.Tensor:  # fmt: skip
        """Prompts whose k finished hypotheses no live beam is expected to beat."""
        full = torch.isfinite(worst)
        if self.early_stopping is True:
            return full
        if self.name == "hf":
            never = self.early_stopping == "never" and self.lp > 0.0
            length = self.steps if never else step + 1
            return full & ((best_live / (length**self.lp)).double() <= worst)
        return full & (worst >= best_candidate.double() / self.pow[counted + step])

    def open_beams(self, scores: torch.Tensor, counted: torch.Tensor) -> torch.Tensor | None:
        """`authors`: the scores of beams still open at the limit, finalized over the full
        length; `hf` has ended them already."""
        if self.name == "hf":
            return None
        return scores.double() / self.pow[counted + self.steps][:, None]


def _end_at_the_limit(
    rule: _Rule,
    finished: _Finished,
    ids: torch.Tensor,
    chosen: torch.Tensor,
    scores: torch.Tensor,
    counted: torch.Tensor,
    done: torch.Tensor,
) -> None:
    """Every prompt stops at `max_new_tokens`; under `authors` the beams still open (`ids`, the
    live rows' tokens so far, then `chosen`) are first added, scored over the full length."""
    finalized = rule.open_beams(scores, counted)
    if finalized is not None:
        prompts, beams = chosen.shape
        ids = ids.view(prompts, beams, -1)
        ids[..., -1] = chosen
        still_open = (~done)[:, None] & torch.isfinite(finalized)
        lengths = torch.full_like(chosen, ids.shape[-1])
        finished.merge(torch.where(still_open, finalized, -torch.inf), ids, lengths)
    done[:] = True


@torch.no_grad()
def beam_search(
    scorer: Scorer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    eos_id: int,
    config: DecodeConfig,
    banned: Sequence[int] = (),
    counted: torch.Tensor | None = None,
) -> list[Hypothesis]:
    """The best hypothesis per prompt under `config.rule` (`_Rule`), as token ids without the
    final eos; `banned` tokens are never chosen. `counted`: the tokens per prompt that the
    `authors` rule counts before the first new one (default: the prompt's real tokens).

    A beam of one is greedy decoding, as in both references. Every step is a few batched
    tensor operations on the device, whatever the batch; a prompt that stops leaves the batch
    (its rows are no longer computed), and Python touches a prompt's ids only once, when it
    stops.
    """
    device = input_ids.device
    prompts, beams, steps = input_ids.shape[0], config.num_beams, config.max_new_tokens
    width = 2 * beams if beams > 1 else 1  # 2k candidates keep k live beams if k of them end
    counted = attention_mask.sum(dim=1) if counted is None else counted.to(device)
    rule = _Rule(config, counted)
    banned_ids = torch.tensor(list(banned), dtype=torch.long, device=device)
    logprobs = scorer.prefill(input_ids, attention_mask).repeat_interleave(beams, dim=0)
    scorer.expand(beams)
    # All beams of a prompt start identical: only the first may expand at the first step.
    scores = torch.full((prompts, beams), -torch.inf, device=device)
    scores[:, 0] = 0.0
    tokens = torch.zeros((prompts * beams, steps), dtype=torch.long, device=device)
    finished = _Finished.empty(prompts, beams, steps, device)
    prompt_of = torch.arange(prompts, device=device)  # the prompt of each live group of rows
    best = [Hypothesis([], -math.inf) for _ in range(prompts)]
    for step in range(steps):
        if step < config.min_new_tokens:
            logprobs[:, eos_id] = -torch.inf
        logprobs[:, banned_ids] = -torch.inf
        live, vocab = scores.shape[0], logprobs.shape[-1]
        candidates = (scores.view(-1, 1) + logprobs).view(live, beams * vocab)
        top_scores, top_ids = candidates.topk(width, dim=-1)
        rows = torch.arange(live, device=device)[:, None] * beams + top_ids // vocab
        token = top_ids % vocab
        is_eos = token == eos_id
        ids = tokens[rows]
        ids[..., step] = token
        ends = rule.ends(is_eos, step, beams) & (top_scores > -torch.inf)
        normalized = rule.normalized(top_scores, counted[prompt_of], step)
        finished.merge(torch.where(ends, normalized, -torch.inf), ids, step + (~is_eos).long())
        rows, chosen, scores = _continuing(rows, token, top_scores, is_eos, beams, eos_id)
        done = rule.done(
            finished.scores[:, -1], top_scores[:, 0], scores[:, 0], counted[prompt_of], step
        )
        done |= ~torch.isfinite(scores[:, 0])  # no live beam left (greedy decoding's eos)
        if step == steps - 1:
            _end_at_the_limit(rule, finished, tokens[rows.flatten()], chosen, scores,
                              counted[prompt_of], done)  # fmt: skip
        stopped = done.nonzero().flatten()
        if len(stopped):
            for prompt, hypothesis in zip(
                prompt_of[stopped].tolist(), finished.best(stopped), strict=True
            ):
                best[prompt] = hypothesis
            if len(stopped) == live:
                break
            going = (~done).nonzero().flatten()
            rows, chosen, scores = rows[going], chosen[going], scores[going]
            prompt_of = prompt_of[going]
            finished.keep(going)
        tokens = tokens[rows.flatten()]
        tokens[:, step] = chosen.flatten()
        scorer.reorder(rows.flatten())
        logprobs = scorer.step(chosen.flatten())
    return best


def newline_tokens(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every token whose text has a newline: the paper's GPT-2 decoding banned them (ids 198 and
    628 there), since a table-to-text output is one paragraph."""
    return [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]


def pad(rows: Sequence[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts of a decoder-only model are left-padded so that all rows end together; an
    encoder's source is right-padded, because BART's encoder numbers positions from the left."""
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        input_ids[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return input_ids, mask


@dataclass
class DecodeStats:
    """What decoding did, for the cell's record and `bench perf`."""

    batches: int = 0  # beam searches run, halves included
    new_tokens: int = 0  # tokens of the returned outputs (no eos)
    oom_halvings: int = 0  # batches that ran out of memory and were decoded as two halves


def decode_batches(lengths: Sequence[int], config: DecodeConfig) -> list[list[int]]:
    """Indices of prompts grouped into decode batches, longest first so that batches pad little:
    at most `batch_size` prompts and, with `batch_tokens`, at most that many tokens of beam
    state, prompts x beams x (longest prompt + max_new_tokens). A prompt over the budget on its
    own is still decoded, alone."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < config.batch_size:
            width = lengths[batches[-1][0]] + config.max_new_tokens
            tokens = (len(batches[-1]) + 1) * config.num_beams * width
            if config.batch_tokens is None or tokens <= config.batch_tokens:
                batches[-1].append(i)
                continue
        batches.append([i])
    return batches


def generate(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    config: DecodeConfig,
    max_source_tokens: int,
    device: torch.device,
    *,
    progress: Progress | None = None,
    precision: str = "fp32",
    stats: DecodeStats | None = None,
) -> list[str]:
    """One output text per task source (`decode` of their encodings)."""
    encoded = [encode_source(tokenizer, s, max_source_tokens) for s in sources]
    hypotheses = decode(
        model, tokenizer, encoded, config, device,
        progress=progress, precision=precision, stats=stats,
    )  # fmt: skip
    return [text(tokenizer, h) for h in hypotheses]


def text(tokenizer: PreTrainedTokenizerBase, hypothesis: Hypothesis) -> str:
    return tokenizer.decode(hypothesis.tokens, skip_special_tokens=True).strip()


def decode(
    model: AdaptedLM,
    tokenizer: PreTrainedTokenizerBase,
    encoded: Sequence[list[int]],
    config: DecodeConfig,
    device: torch.device,
    *,
    progress: Progress | None = None,
    precision: str = "fp32",
    stats: DecodeStats | None = None,
) -> list[Hypothesis]:
    """The best hypothesis per prompt (token ids), decoded in the resolved `precision`
    (`bench.engine.precision`: fp32 is the plain computation). A batch that runs out of GPU
    memory is decoded as two halves (the outputs do not depend on the batching); `stats` counts
    what happened."""
    model.eval()
    stats = stats if stats is not None else DecodeStats()
    banned = newline_tokens(tokenizer) if config.no_newlines else []
    found: list[Hypothesis | None] = [None] * len(encoded)

    def run(index: list[int]) -> None:
        left = not model.is_encoder_decoder
        ids, mask = pad([encoded[i] for i in index], tokenizer.eos_token_id, left)
        # the authors' rule counts a GPT-2 prompt's tokens, and BART's decoder start token
        counted = mask.sum(dim=1) if left else torch.ones(len(index), dtype=torch.long)
        try:
            with autocast(precision, device):
                hyps = beam_search(
                    model.scorer(), ids.to(device), mask.to(device), tokenizer.eos_token_id,
                    config, banned, counted,
                )  # fmt: skip
        except torch.OutOfMemoryError:
            if len(index) == 1:
                raise
            hyps = None  # out of the handler first, so that the failed batch's tensors are freed
        if hyps is None:
            stats.oom_halvings += 1
            if device.type == "cuda":
                torch.cuda.empty_cache()
            run(index[: len(index) // 2])
            run(index[len(index) // 2 :])
            return
        stats.batches += 1
        for i, hyp in zip(index, hyps, strict=True):
            found[i] = hyp
            stats.new_tokens += len(hyp.tokens)

    batches = decode_batches([len(e) for e in encoded], config)
    with tracker(progress, "  generating", len(batches)) as advance:
        for index in batches:
            run(index)
            advance(1)
    return [h for h in found if h is not None]
