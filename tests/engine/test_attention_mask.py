"""`bench.engine.adapted.causal_mask`: the 4D attention mask built in microseconds must give GPT-2
the very logits that transformers' own (slow) mask construction from the 2D mask gives, bit for bit,
in training batches, prompts, decoding steps, with and without a prefix."""

from __future__ import annotations

import pytest
import torch

from bench.engine.adapted import AdaptedLM, causal_mask
from bench.engine.loading import load_model
from tests.builders import build_on_mini


def build(method: str, **settings) -> AdaptedLM:
    model, _ = build_on_mini(method, seed=None, **settings)  # any start: both masks meet one model
    return model.eval()


def forward_2d(model: AdaptedLM, ids: torch.Tensor, mask: torch.Tensor, cache=None):
    """`AdaptedLM.forward` as it was: the 2D mask, which transformers turns into a 4D one."""
    cache = model.prefix_cache(ids.shape[0]) if cache is None else cache
    prefix = mask.new_ones(mask.shape[0], model.prefix_length)
    positions = (mask.cumsum(-1) - 1).clamp(min=0) + model.prefix_length
    out = model.base(
        input_ids=ids,
        attention_mask=torch.cat([prefix, mask], dim=1),
        position_ids=positions[:, -ids.shape[1] :],
        past_key_values=cache,
        use_cache=True,
    )
    return out.logits, out.past_key_values


def batch(lengths: list[int], width: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(sum(lengths))
    ids = torch.randint(3, 1000, (len(lengths), width), generator=generator)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, slice(width - n, width) if left else slice(0, n)] = 1
    return ids, mask


@pytest.mark.parametrize(("method", "settings"), [("finetune", {}), ("prefix", {"length": 4})])
@pytest.mark.parametrize(
    ("lengths", "left"),
    [([9, 5, 7], False), ([9, 5, 7], True), ([6, 6], False), ([1, 3], True)],
)
@torch.no_grad()
def test_logits_are_those_of_transformers_mask(method, settings, lengths, left):
    """A prefill (right-padded as in training, or left-padded as a prompt), then three decoding
    steps of one token per row."""
    model = build(method, **settings)
    ids, mask = batch(lengths, max(lengths), left)
    ours, cache = model(ids, mask)
    theirs, their_cache = forward_2d(model, ids, mask)
    assert torch.equal(ours, theirs)
    for _ in range(3):
        ids = ours[:, -1].argmax(-1, keepdim=True)
        mask = torch.cat([mask, mask.new_ones(len(ids), 1)], dim=1)
        ours, cache = model(ids, mask, cache)
        theirs, their_cache = forward_2d(model, ids, mask, their_cache)
        assert torch.equal(ours, theirs)


def test_the_mask_is_built_here_only_where_transformers_would_build_one():
    base = build("finetune").base
    padded = torch.tensor([[1, 1, 1], [1, 1, 0]])
    full = torch.ones(2, 3, dtype=torch.long)
    mask = causal_mask(base, padded, 3)
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.bool
    assert mask[1, 0].tolist() == [[True, False, False], [True, True, False], [True, True, False]]
    step = causal_mask(base, padded, 1)  # one new token after two cached ones
    assert step.tolist() == [[[[True, True, True]]], [[[True, True, False]]]]
    assert causal_mask(base, full, 3) is full and causal_mask(base, full, 1) is full
    assert causal_mask(base, full, 2).shape == (2, 1, 2, 3)  # a cache before the new tokens


def test_a_wrapped_gpt2_gets_the_2d_mask():
    """The `adapters` library's GPT-2 reads the 2D mask in its own forward."""
    padded = torch.tensor([[1, 1, 1], [1, 1, 0]])
    assert causal_mask(build("adapter", config="houlsby").base, padded, 3) is padded


def test_off_the_cpu_the_mask_is_built_without_asking_the_device():
    """A meta tensor stands for a GPU's: reading its values (a host sync on a GPU) raises."""
    base = load_model("mini-tiny", seed=0).model
    keys = torch.ones(2, 7, dtype=torch.long, device="meta")
    for new in (1, 7):  # a decoding step, a whole unpadded batch
        mask = causal_mask(base, keys, new)
        assert mask.shape == (2, 1, new, 7) and mask.dtype == torch.bool
    unpadded = torch.ones(2, 7, dtype=torch.long)
    assert causal_mask(base, unpadded, 1) is unpadded  # on the CPU: asked, none to build
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(keys.all())
