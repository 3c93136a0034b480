"""Our decoder agrees with transformers' and is independent of batching and padding."""

import pytest
import torch

from bench.engine.adapted import LMScorer
from bench.engine.encoding import encode_source
from bench.engine.generation import DecodeStats, decode_batches, generate, pad
from bench.engine.precision import autocast
from bench.spec.settings import DecodeConfig
from tests.builders import build_on_mini

SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "Varhaton : country : Avalia",
    "Ivo Silfa : birthPlace : Torlo | Ivo Silfa : club : Kemton Wolves",
]


def test_greedy_matches_transformers_generate():
    model, tokenizer = build_on_mini("finetune")
    config = DecodeConfig(num_beams=1, max_new_tokens=20)
    ours = generate(model, tokenizer, SOURCES, config, 512, torch.device("cpu"))
    for source, output in zip(SOURCES, ours, strict=True):
        ids = torch.tensor([encode_source(tokenizer, source, 512)])
        theirs = model.base.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=20,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
        )
        expected = tokenizer.decode(theirs[0, ids.shape[1] :], skip_special_tokens=True).strip()
        assert output == expected


def test_batching_and_left_padding_do_not_change_outputs():
    for method, settings in (("finetune", {}), ("prefix", {"length": 3, "mlp_hidden": 8})):
        model, tokenizer = build_on_mini(method, **settings)
        for beams in (1, 3):
            batched, single = (
                generate(
                    model,
                    tokenizer,
                    SOURCES,
                    DecodeConfig(num_beams=beams, max_new_tokens=16, batch_size=size),
                    512,
                    torch.device("cpu"),
                )
                for size in (8, 1)
            )
            assert batched == single


def test_beam_search_finds_at_least_the_greedy_likelihood():
    model, tokenizer = build_on_mini("finetune")

    def logprob(source: str, output: str) -> float:
        src = encode_source(tokenizer, source, 512)
        out = tokenizer.encode(" " + output) if output else []
        ids = torch.tensor([src + out + [tokenizer.eos_token_id]])
        with torch.no_grad():
            logits, _ = model(ids, torch.ones_like(ids))
        logp = torch.log_softmax(logits[0, :-1], -1)
        targets = ids[0, 1:]
        return logp[torch.arange(len(src) - 1, len(targets)), targets[len(src) - 1 :]].sum().item()

    config = dict(max_new_tokens=12, length_penalty=0.0)
    greedy = generate(
        model, tokenizer, SOURCES, DecodeConfig(num_beams=1, **config), 512, torch.device("cpu")
    )
    beam = generate(
        model, tokenizer, SOURCES, DecodeConfig(num_beams=4, **config), 512, torch.device("cpu")
    )
    for source, g, b in zip(SOURCES, greedy, beam, strict=True):
        assert logprob(source, b) >= logprob(source, g) - 1e-4


def test_min_new_tokens_blocks_an_early_end():
    model, tokenizer = build_on_mini("finetune")
    outputs = generate(
        model,
        tokenizer,
        SOURCES,
        DecodeConfig(num_beams=2, min_new_tokens=5, max_new_tokens=8),
        512,
        torch.device("cpu"),
    )
    assert all(len(tokenizer.encode(" " + o)) >= 5 for o in outputs)


def test_token_budget_batches_longest_first():
    lengths = [5, 30, 12, 30, 8, 20]
    rows = DecodeConfig(num_beams=2, max_new_tokens=10, batch_size=4)
    assert decode_batches(lengths, rows) == [[1, 3, 5, 2], [4, 0]]  # longest first, 4 a batch
    budget = rows.model_copy(update={"batch_tokens": 2 * 2 * (30 + 10)})  # two of the longest
    assert decode_batches(lengths, budget) == [[1, 3], [5, 2], [4, 0]]
    alone = rows.model_copy(update={"batch_tokens": 10})  # under one prompt's beams: one each
    assert decode_batches(lengths, alone) == [[1], [3], [5], [2], [4], [0]]


def test_a_batch_out_of_memory_is_decoded_in_halves(monkeypatch):
    model, tokenizer = build_on_mini("finetune")
    config = DecodeConfig(num_beams=2, max_new_tokens=10)
    expected = generate(model, tokenizer, SOURCES, config, 512, torch.device("cpu"))
    step = LMScorer.step

    def small_batches_only(self, tokens):
        if len(tokens) > 2:  # more than one prompt's two beams
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return step(self, tokens)

    monkeypatch.setattr(LMScorer, "step", small_batches_only)
    stats = DecodeStats()
    ours = generate(model, tokenizer, SOURCES, config, 512, torch.device("cpu"), stats=stats)
    assert ours == expected
    assert stats.oom_halvings == 2 and stats.batches == 3  # 3 prompts -> 1 + (1 + 1)
    assert stats.new_tokens == sum(len(tokenizer.encode(" " + o)) for o in ours if o)
    with pytest.raises(torch.OutOfMemoryError):  # one prompt that does not fit: a real failure
        generate(model, tokenizer, SOURCES[:1], config.model_copy(update={"num_beams": 3}),
                 512, torch.device("cpu"))  # fmt: skip


@pytest.mark.parametrize("method", ["finetune", "prefix"])
def test_bf16_decoding_keeps_the_top_tokens_and_the_prefix_in_bf16(method):
    settings = {"length": 3, "mlp_hidden": 8} if method == "prefix" else {}
    model, tokenizer = build_on_mini(method, **settings)
    model.finalize()
    model.eval()
    ids, mask = pad([encode_source(tokenizer, s, 512) for s in SOURCES], 0, left=True)
    with torch.no_grad():
        exact = model.scorer().prefill(ids, mask)
        scorer = model.scorer()
        with autocast("bf16", torch.device("cpu")):
            low = scorer.prefill(ids, mask)
    assert {layer.keys.dtype for layer in scorer.cache.layers} == {torch.bfloat16}
    top_two = exact.topk(2).values
    clear = top_two[:, 0] - top_two[:, 1] > 0.05  # not a near-tie in fp32
    assert clear.any()
    assert torch.equal(low.argmax(-1)[clear], exact.argmax(-1)[clear])
    outputs = generate(
        model, tokenizer, SOURCES, DecodeConfig(num_beams=2, max_new_tokens=8, min_new_tokens=8),
        512, torch.device("cpu"), precision="bf16",
    )  # fmt: skip
    assert all(len(tokenizer.encode(" " + o)) >= 4 for o in outputs)
