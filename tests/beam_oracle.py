"""Today's beam search before it moved onto the device (bench/engine/generation.py at efc8da6), kept
verbatim as the oracle: the on-device beam search must return exactly its hypotheses."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from bench.engine.adapted import Scorer
from bench.spec.settings import DecodeConfig


@torch.no_grad()
def oracle_beam_search(
    scorer: Scorer,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    eos_id: int,
    config: DecodeConfig,
    banned: Sequence[int] = (),
) -> list[list[int]]:
    """The best hypothesis per prompt, as token ids without the final eos or `banned` tokens.

    Finished hypotheses are ranked by logprob / length**length_penalty; a prompt stops once it
    has `num_beams` finished ones and no live beam can still beat the worst of them.
    """
    banned_ids = torch.tensor(list(banned), dtype=torch.long, device=input_ids.device)
    batch, beams = input_ids.shape[0], config.num_beams
    device = input_ids.device
    logprobs = scorer.prefill(input_ids, attention_mask)
    scorer.expand(beams)
    # All beams of a prompt start identical: only the first may expand at the first step.
    scores = torch.full((batch, beams), -torch.inf, device=device)
    scores[:, 0] = 0.0
    logprobs = logprobs.repeat_interleave(beams, dim=0)
    tokens = torch.zeros((batch * beams, 0), dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    done = [False] * batch

    def normalized(score: float, length: int) -> float:
        return score / max(length, 1) ** config.length_penalty

    for step in range(config.max_new_tokens):
        if step < config.min_new_tokens:
            logprobs[:, eos_id] = -torch.inf
        logprobs[:, banned_ids] = -torch.inf
        vocab = logprobs.shape[-1]
        candidates = (scores.view(-1, 1) + logprobs).view(batch, beams * vocab)
        # 2k candidates keep k live beams even if k of them end; a beam of one is plain greedy.
        top_scores, top_ids = candidates.topk(2 * beams if beams > 1 else 1, dim=-1)
        next_rows, next_tokens, next_scores = [], [], []
        for b in range(batch):
            kept = 0
            for score, flat in zip(top_scores[b].tolist(), top_ids[b].tolist(), strict=True):
                row, token = b * beams + flat // vocab, flat % vocab
                if token == eos_id or step == config.max_new_tokens - 1:
                    if not done[b] and score > -torch.inf:
                        ids = tokens[row].tolist() + ([] if token == eos_id else [token])
                        finished[b].append((normalized(score, len(ids) + 1), ids))
                    continue
                if kept < beams:
                    next_rows.append(row)
                    next_tokens.append(token)
                    next_scores.append(score if not done[b] else -torch.inf)
                    kept += 1
            while kept < beams:  # fewer live candidates than beams: pad with dead rows
                next_rows.append(b * beams)
                next_tokens.append(eos_id)
                next_scores.append(-torch.inf)
                kept += 1
            finished[b].sort(key=lambda h: -h[0])
            del finished[b][beams:]
            best_live = max(next_scores[-beams:])
            if len(finished[b]) == beams and (
                best_live == -torch.inf or normalized(best_live, step + 2) <= finished[b][-1][0]
            ):
                done[b] = True
        if all(done) or step == config.max_new_tokens - 1:
            break
        rows = torch.tensor(next_rows, device=device)
        chosen = torch.tensor(next_tokens, device=device)
        scores = torch.tensor(next_scores, device=device).view(batch, beams)
        tokens = torch.cat([tokens[rows], chosen[:, None]], dim=1)
        scorer.reorder(rows)
        logprobs = scorer.step(chosen)
    return [max(hyps, key=lambda h: h[0])[1] if hyps else [] for hyps in finished]
