"""Batched decoding: beam search (greedy is a beam of one) over a next-token scorer.

Our own loop rather than `model.generate`: a prefix lives in the key/value cache, which
`generate` handles differently across transformers versions, and the hybrid methods need to mix
several models' next-token distributions inside the beam. A `Scorer` (an adapted model's
`scorer()`) is anything that can prefill prompts, score one more token per row, and follow the
beam's reordering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from bench.engine.adapted import AdaptedLM, Scorer
from bench.engine.encoding import encode_source
from bench.engine.precision import autocast
from bench.progress import Progress, tracker
from bench.spec.settings import DecodeConfig


@dataclass
class _Finished:
    """Each live prompt's best finished hypotheses so far, best first: their scores normalized
    by length (float64, as the ranking always was; -inf in an empty slot), ids and lengths."""

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
        sort is stable on the negated score, as Python's list sort by -score was, so ties keep
        the order: kept ones first, then new ones in candidate order."""
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

    def best(self, prompts: torch.Tensor) -> list[list[int]]:
        """The best hypothesis of each of `prompts` as ids (none: []), in one transfer."""
        found = torch.isfinite(self.scores[prompts, 0]).tolist()
        lengths = self.lengths[prompts, 0].tolist()
        ids = self.tokens[prompts, 0].tolist()
        return [row[:n] if ok else [] for row, n, ok in zip(ids, lengths, found, strict=True)]


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


@torch.no_grad()
def beam_search(
    scorer: Scorer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    eos_id: int,
    config: DecodeConfig,
    banned: Sequence[int] = (),
) -> list[list[int]]:
    """The best hypothesis per prompt, as token ids without the final eos or `banned` tokens.

    Finished hypotheses are ranked by logprob / length**length_penalty (the length counts the
    eos); a prompt stops once it has `num_beams` finished ones and no live beam can still beat
    the worst of them. Every step is a few batched tensor operations on the device, whatever
    the batch; a prompt that stops leaves the batch (its rows are no longer computed), and
    Python touches a prompt's ids only once, when it stops.
    """
    device = input_ids.device
    prompts, beams, steps = input_ids.shape[0], config.num_beams, config.max_new_tokens
    width = 2 * beams if beams > 1 else 1  # 2k candidates keep k live beams if k of them end
    lengths = range(steps + 2)
    penalty = torch.tensor(
        [max(n, 1) ** config.length_penalty for n in lengths], dtype=torch.float64, device=device
    )  # computed by Python's pow, as scores always were normalized
    banned_ids = torch.tensor(list(banned), dtype=torch.long, device=device)
    logprobs = scorer.prefill(input_ids, attention_mask).repeat_interleave(beams, dim=0)
    scorer.expand(beams)
    # All beams of a prompt start identical: only the first may expand at the first step.
    scores = torch.full((prompts, beams), -torch.inf, device=device)
    scores[:, 0] = 0.0
    tokens = torch.zeros((prompts * beams, steps), dtype=torch.long, device=device)
    finished = _Finished.empty(prompts, beams, steps, device)
    prompt_of = torch.arange(prompts, device=device)  # the prompt of each live group of rows
    best: list[list[int]] = [[] for _ in range(prompts)]
    for step in range(steps):
        if step < config.min_new_tokens:
            logprobs[:, eos_id] = -torch.inf
        logprobs[:, banned_ids] = -torch.inf
        live, vocab = scores.shape[0], logprobs.shape[-1]
        candidates = (scores.view(-1, 1) + logprobs).view(live, beams * vocab)
        top_scores, top_ids = candidates.topk(width, dim=-1)
        rows = torch.arange(live, device=device)[:, None] * beams + top_ids // vocab
        token = top_ids % vocab
        ended = token == eos_id if step < steps - 1 else torch.ones_like(token, dtype=torch.bool)
        length = step + (token != eos_id).long()  # without the eos
        ids = tokens[rows]
        ids[..., step] = token
        valid = ended & (top_scores > -torch.inf)
        normalized = top_scores.double() / penalty[length + 1]
        finished.merge(torch.where(valid, normalized, -torch.inf), ids, length)
        rows, chosen, scores = _continuing(rows, token, top_scores, ended, beams, eos_id)
        best_live = scores.max(dim=1).values.double() / penalty[step + 2]
        done = torch.isfinite(finished.scores[:, -1]) & (best_live <= finished.scores[:, -1])
        if step == steps - 1:
            done[:] = True
        stopped = done.nonzero().flatten()
        if len(stopped):
            hypotheses = finished.best(stopped)
            for prompt, ids in zip(prompt_of[stopped].tolist(), hypotheses, strict=True):
                best[prompt] = ids
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
    """One output per source, decoded in the resolved `precision` (`bench.engine.precision`: fp32 is
    the plain computation). A batch that runs out of GPU memory is decoded as two halves (the
    outputs do not depend on the batching); `stats` counts what happened."""
    model.eval()
    stats = stats if stats is not None else DecodeStats()
    banned = newline_tokens(tokenizer) if config.no_newlines else []
    encoded = [encode_source(tokenizer, s, max_source_tokens) for s in sources]
    outputs: list[str] = [""] * len(sources)

    def decode(index: list[int]) -> None:
        ids, mask = pad(
            [encoded[i] for i in index], tokenizer.eos_token_id, not model.is_encoder_decoder
        )
        try:
            with autocast(precision, device):
                hyps = beam_search(
                    model.scorer(),
                    ids.to(device),
                    mask.to(device),
                    tokenizer.eos_token_id,
                    config,
                    banned,
                )
        except torch.OutOfMemoryError:
            if len(index) == 1:
                raise
            hyps = None  # out of the handler first, so that the failed batch's tensors are freed
        if hyps is None:
            stats.oom_halvings += 1
            if device.type == "cuda":
                torch.cuda.empty_cache()
            decode(index[: len(index) // 2])
            decode(index[len(index) // 2 :])
            return
        stats.batches += 1
        for i, hyp in zip(index, hyps, strict=True):
            outputs[i] = tokenizer.decode(hyp, skip_special_tokens=True).strip()
            stats.new_tokens += len(hyp)

    batches = decode_batches([len(e) for e in encoded], config)
    with tracker(progress, "  generating", len(batches)) as advance:
        for index in batches:
            decode(index)
            advance(1)
    return outputs
