"""Our decoder agrees with transformers' and is independent of batching and padding."""

import torch

from bench.encoding import encode_source
from bench.generation import generate
from bench.models import load_model
from bench.registry import METHODS
from bench.spec import DecodeConfig

SOURCES = [
    "name : The Golden Crown | eatType : pub | food : Italian",
    "Varhaton : country : Avalia",
    "Ivo Silfa : birthPlace : Torlo | Ivo Silfa : club : Kemton Wolves",
]


def adapted(method: str, **settings):
    loaded = load_model("mini-tiny", seed=0)
    factory = METHODS.get(method)
    torch.manual_seed(0)
    return factory.build(loaded.model, factory.Settings(**settings)), loaded.tokenizer


def test_greedy_matches_transformers_generate():
    model, tokenizer = adapted("finetune")
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
        model, tokenizer = adapted(method, **settings)
        for beams in (1, 3):
            batched = generate(
                model,
                tokenizer,
                SOURCES,
                DecodeConfig(num_beams=beams, max_new_tokens=16, batch_size=8),
                512,
                torch.device("cpu"),
            )
            single = generate(
                model,
                tokenizer,
                SOURCES,
                DecodeConfig(num_beams=beams, max_new_tokens=16, batch_size=1),
                512,
                torch.device("cpu"),
            )
            assert batched == single


def test_beam_search_finds_at_least_the_greedy_likelihood():
    model, tokenizer = adapted("finetune")

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
    model, tokenizer = adapted("finetune")
    outputs = generate(
        model,
        tokenizer,
        SOURCES,
        DecodeConfig(num_beams=2, min_new_tokens=5, max_new_tokens=8),
        512,
        torch.device("cpu"),
    )
    assert all(len(tokenizer.encode(" " + o)) >= 5 for o in outputs)
