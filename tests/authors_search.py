"""The paper's beam search, transcribed as a test reference from github:XiangLi1999/PrefixTuning,
`transformers/src/transformers/generation_utils.py` (their vendored transformers 3.x):
`_generate_beam_search` (lines 649-906), `_generate_no_beam_search` (536-647, one beam), and
`BeamHypotheses` (1037-1082). It keeps the original's shape (Python lists and floats, a batch of
prompts with a `done` flag each, done prompts padded with `(0, pad, 0)`), drives the same
`Scorer` the harness's search does, and shares no code with it.

Settings, as the harness states them: their `run_generation.py` decodes one prompt at a time, so
a prompt's length is its real tokens (`counted`), never the batch's padding; BART's decoder
input starts as the start token alone (`counted` 1); `min_new_tokens` counts new tokens (their
`min_length` counted the prompt too, and the 5 of `run_generation.py` never bound a table
prompt); `banned` tokens are set to -inf (their `bad_words_ids` of single tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.engine.adapted import Scorer
from bench.spec.settings import DecodeConfig


class BeamHypotheses:
    """generation_utils.py lines 1037-1082 (`max_length` dropped: nothing reads it)."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping: bool) -> None:
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.num_beams = num_beams
        self.beams: list[tuple[float, list[int]]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def add(self, hyp: list[int], sum_logprobs: float) -> None:
        score = sum_logprobs / len(hyp) ** self.length_penalty
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self) > self.num_beams:
                sorted_scores = sorted([(s, idx) for idx, (s, _) in enumerate(self.beams)])
                del self.beams[sorted_scores[0][1]]
                self.worst_score = sorted_scores[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int) -> bool:
        if len(self) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        cur_score = best_sum_logprobs / cur_len**self.length_penalty
        return self.worst_score >= cur_score


def _postprocess(scores: torch.Tensor, new: int, eos: int, config: DecodeConfig,
                 banned: list[int]) -> torch.Tensor:  # fmt: skip
    """`postprocess_next_token_scores`, for the settings the harness has."""
    scores = scores.clone()
    if new < config.min_new_tokens:
        scores[:, eos] = -float("inf")
    if banned:
        scores[:, banned] = -float("inf")
    return scores


@torch.no_grad()
def authors_beam_search(
    scorer: Scorer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    eos: int,
    config: DecodeConfig,
    banned: Sequence[int] = (),
    counted: torch.Tensor | None = None,
) -> list[list[int]]:
    """The best output's new token ids (no eos) per prompt of the batch."""
    counted_list = (attention_mask.sum(dim=1) if counted is None else counted).tolist()
    scores = scorer.prefill(input_ids, attention_mask)
    if config.num_beams == 1:
        return _no_beam_search(scorer, scores, eos, config, list(banned))
    return _beam_search(scorer, scores, counted_list, eos, config, list(banned))


def _no_beam_search(scorer, scores, eos, config, banned) -> list[list[int]]:
    """`_generate_no_beam_search` without sampling: argmax until eos or the limit."""
    batch_size = scores.shape[0]
    out: list[list[int]] = [[] for _ in range(batch_size)]
    unfinished = [True] * batch_size
    for step in range(config.max_new_tokens):
        scores = _postprocess(scores, step, eos, config, banned)
        next_token = torch.argmax(scores, dim=-1).tolist()
        for i, token in enumerate(next_token):
            if unfinished[i]:
                if token == eos:
                    unfinished[i] = False
                else:
                    out[i].append(token)
        if not any(unfinished) or step == config.max_new_tokens - 1:
            break
        scores = scorer.step(torch.tensor([t if u else eos for t, u in zip(
            next_token, unfinished, strict=True)]))  # fmt: skip
    return out


def _beam_search(scorer, scores, counted, eos, config, banned) -> list[list[int]]:
    batch_size, num_beams = len(counted), config.num_beams
    generated_hyps = [
        BeamHypotheses(num_beams, config.length_penalty, config.early_stopping is True)
        for _ in range(batch_size)
    ]
    scores = scores.repeat_interleave(num_beams, dim=0)
    scorer.expand(num_beams)
    beam_scores = torch.zeros((batch_size, num_beams), dtype=torch.float)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    # each beam's sequence: `counted` context positions (only their number matters) + new tokens
    input_ids = [[0] * counted[b // num_beams] for b in range(batch_size * num_beams)]
    vocab_size = scores.shape[-1]
    done = [False for _ in range(batch_size)]
    for step in range(config.max_new_tokens):
        scores = _postprocess(scores, step, eos, config, banned)
        next_scores = scores + beam_scores[:, None].expand_as(scores)
        next_scores = next_scores.view(batch_size, num_beams * vocab_size)
        next_scores, next_tokens = torch.topk(next_scores, 2 * num_beams, dim=1, largest=True,
                                              sorted=True)  # fmt: skip
        next_batch_beam: list[tuple] = []
        for batch_idx in range(batch_size):
            if done[batch_idx]:
                next_batch_beam.extend([(0, eos, 0)] * num_beams)  # pad the batch
                continue
            cur_len = counted[batch_idx] + step
            next_sent_beam = []
            for beam_token_rank, (beam_token_id, beam_token_score) in enumerate(
                zip(next_tokens[batch_idx], next_scores[batch_idx], strict=True)
            ):
                beam_id = int(beam_token_id) // vocab_size
                token_id = int(beam_token_id) % vocab_size
                effective_beam_id = batch_idx * num_beams + beam_id
                if token_id == eos:
                    if beam_token_rank >= num_beams:
                        continue
                    generated_hyps[batch_idx].add(
                        list(input_ids[effective_beam_id]), beam_token_score.item()
                    )
                else:
                    next_sent_beam.append((beam_token_score, token_id, effective_beam_id))
                if len(next_sent_beam) == num_beams:
                    break
            done[batch_idx] = done[batch_idx] or generated_hyps[batch_idx].is_done(
                next_scores[batch_idx].max().item(), cur_len
            )
            next_batch_beam.extend(next_sent_beam)
        if all(done):
            break
        beam_scores = torch.tensor([float(x[0]) for x in next_batch_beam], dtype=torch.float)
        beam_tokens = [x[1] for x in next_batch_beam]
        beam_idx = [x[2] for x in next_batch_beam]
        input_ids = [input_ids[b] + [t] for b, t in zip(beam_idx, beam_tokens, strict=True)]
        if step < config.max_new_tokens - 1:  # their loop runs one more step that nothing reads
            scorer.reorder(torch.tensor(beam_idx))
            scores = scorer.step(torch.tensor(beam_tokens))
    for batch_idx in range(batch_size):  # finalize all open beam hypotheses
        if done[batch_idx]:
            continue
        for beam_id in range(num_beams):
            effective_beam_id = batch_idx * num_beams + beam_id
            generated_hyps[batch_idx].add(input_ids[effective_beam_id],
                                          beam_scores[effective_beam_id].item())  # fmt: skip
    best = []
    for i, hypotheses in enumerate(generated_hyps):
        sorted_hyps = sorted(hypotheses.beams, key=lambda x: x[0])
        best.append(sorted_hyps.pop()[1][counted[i]:])
    return best
