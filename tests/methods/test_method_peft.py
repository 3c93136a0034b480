"""Every HF PEFT type as a method of the harness, checked against PEFT itself: its trainable
counts (`get_nb_trainable_parameters`), its forward (`PeftModel` on the same weights), its
saved state, on GPT-2 (the mini LM) and BART (a small random one)."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model, get_peft_model_state_dict
from peft.utils import PeftType
from safetensors.torch import load, save
from transformers import BartConfig, BartForConditionalGeneration

from bench.engine.adapted import Batch, BuildContext, count, target_loss
from bench.engine.generation import generate
from bench.engine.loading import load_model
from bench.engine.training import train
from bench.errors import UserError
from bench.methods.peft.config import NOT_RUN, PRESETS, peft_config, preset_name
from bench.spec.grid import load_grid
from bench.spec.registry import METHODS, TASKS
from bench.spec.settings import DecodeConfig, TrainConfig
from bench.spec.task import TRAIN, training_pairs
from tests.builders import build

CPU = torch.device("cpu")
DECODE = DecodeConfig(num_beams=2, max_new_tokens=6)
STEPS = TrainConfig(epochs=1, batch_size=8, lr=1e-2, max_steps=2)
# What PEFT itself refuses on these bases (its own message is checked): Conv1D layers (GPT-2's
# projections) for the Linear-only tuners, the GPT-2 modules no default targets, and the decoder
# prompts of multitask prompt tuning on BART, which only PEFT's own forward builds.
CONV1D_ONLY_LINEAR = {
    "BEFT", "BOFT", "C3A", "DELORA", "GLORA", "HRA", "LILY", "LOHA", "LOKR", "MISS", "OFT",
    "OSF", "PEANUT", "PSOFT", "ROAD", "SHIRA", "SUPERTUNING",
}  # fmt: skip
NOT_ON = {"gpt2": CONV1D_ONLY_LINEAR, "bart": {"MULTITASK_PROMPT_TUNING"}}


@pytest.fixture(scope="module")
def tokenizer():
    return load_model("mini-tiny", seed=0).tokenizer


@pytest.fixture(scope="module")
def pairs():
    return training_pairs(TASKS.get("mini-e2e")().load(TRAIN, None)[:16])


def bart(tokenizer, seed: int = 0) -> BartForConditionalGeneration:
    """A small random BART whose widths (64) fit every PEFT type's size rules."""
    eos = tokenizer.eos_token_id
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=256, pad_token_id=1, bos_token_id=eos,
        eos_token_id=eos, decoder_start_token_id=eos, forced_eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(seed)
    return BartForConditionalGeneration(config).eval()


def base(arch: str, tokenizer):
    return load_model("mini-tiny", seed=0).model if arch == "gpt2" else bart(tokenizer)


def build_preset(peft_type: str, arch: str, tokenizer, **config):
    torch.manual_seed(0)
    settings = {"config": config} if config else {}
    return build(preset_name(peft_type), base(arch, tokenizer), BuildContext(tokenizer), **settings)


def test_the_zoo_grid_runs_every_type_that_runs_on_each_architecture():
    zoo = {m.name for m in load_grid("peft-zoo")[0].methods}
    assert {preset_name(t) for t in PRESETS if t not in NOT_ON["gpt2"]} <= zoo
    xsum = {m.name for m in load_grid("peft-zoo-xsum")[0].methods}
    assert {preset_name(t) for t in PRESETS if t not in NOT_ON["bart"]} <= xsum
    assert not {m for m in zoo if m.startswith("peft-")} - {preset_name(t) for t in PRESETS}


def test_every_peft_type_is_a_preset_or_said_why_not():
    types = {t.value for t in PeftType}
    assert set(PRESETS) | set(NOT_RUN) == types
    assert not set(PRESETS) & set(NOT_RUN)
    for peft_type in PRESETS:
        method = METHODS.get(preset_name(peft_type))
        assert method.source == "peft"
        assert method.Settings().config["peft_type"] == peft_type


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
@pytest.mark.parametrize("peft_type", PRESETS)
def test_each_type_trains_stores_reloads_and_decodes_identically(peft_type, arch, tokenizer, pairs):
    if peft_type in NOT_ON[arch]:
        with pytest.raises(UserError, match=f"PEFT's {peft_type} (cannot adapt|finds nothing|on)"):
            build_preset(peft_type, arch, tokenizer)
        return
    model = build_preset(peft_type, arch, tokenizer)
    trained = count(model.trainable_parameters())
    assert trained == model.peft.get_nb_trainable_parameters()[0] > 0
    train(model, tokenizer, pairs, [], STEPS, 0, CPU)
    model.finalize()
    model.eval()
    sources = [source for source, _ in pairs[:3]]
    outputs = generate(model, tokenizer, sources, DECODE, 128, CPU)
    blob = save({k: v.contiguous() for k, v in model.stored_state().items()})
    fresh = build_preset(peft_type, arch, tokenizer)
    fresh.load_stored(load(blob))
    fresh.eval()
    assert generate(fresh, tokenizer, sources, DECODE, 128, CPU) == outputs
    with pytest.raises(ValueError, match="does not fit"):
        fresh.load_stored({"nothing": torch.zeros(1)})


def batch(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([tokenizer.encode("name : Vela | area : riverside | food : Thai")] * 2)
    return ids, torch.ones_like(ids)


@pytest.mark.parametrize("arch", ["gpt2", "bart"])
@pytest.mark.parametrize(
    ("peft_type", "config"),
    [
        ("PREFIX_TUNING", {"num_virtual_tokens": 4, "prefix_projection": True}),
        ("PROMPT_TUNING", {"num_virtual_tokens": 4}),
        ("P_TUNING", {"num_virtual_tokens": 4}),
        ("CARTRIDGE", {"num_virtual_tokens": 4}),
        ("LORA", {"r": 4, "init_lora_weights": False}),
        ("VERA", {"r": 8}),
    ],
)
def test_the_forward_is_peft_models_forward(peft_type, config, arch, tokenizer):
    """Logits of the harness's model equal those of PEFT's own `PeftModel` forward on the same
    weights, while training (a prompt's reparametrization) and after `finalize` (its inference
    form, as `PeftModel.from_pretrained` builds it)."""
    model = build_preset(peft_type, arch, tokenizer, **config).eval()
    with torch.no_grad():  # a random prefix or prompt is small: make it matter
        for name, p in model.peft.named_parameters():
            if p.requires_grad and ("prompt_encoder" in name or "lora_B" in name):
                p.add_(torch.randn_like(p))
    ids, mask = batch(tokenizer)
    start = torch.full((2, 1), tokenizer.eos_token_id)
    decoder_in = torch.cat([start, ids[:, :5]], dim=1)

    def ours() -> torch.Tensor:
        if arch == "gpt2":
            return model(ids, mask)[0]
        return model(decoder_in, torch.ones_like(decoder_in), source=(ids, mask))[0]

    def theirs(peft_model) -> torch.Tensor:
        if arch == "gpt2":
            return peft_model(input_ids=ids, attention_mask=mask).logits[:, -ids.shape[1] :]
        out = peft_model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_in)
        return out.logits[:, -decoder_in.shape[1] :]

    with torch.no_grad():
        torch.testing.assert_close(ours(), theirs(model.peft), atol=1e-5, rtol=1e-5)
        model.finalize()
        torch.testing.assert_close(ours(), theirs(model.peft), atol=1e-5, rtol=1e-5)


def test_adalora_adds_peft_s_regularization_and_allocates_ranks(tokenizer, pairs):
    model = build_preset("ADALORA", "gpt2", tokenizer, init_r=6, target_r=2)
    ids, mask = batch(tokenizer)
    with torch.no_grad():
        peft_loss = model.peft(input_ids=ids, attention_mask=mask, labels=ids).loss
        ours = model.training_loss(Batch(ids, mask, ids))
        assert not torch.allclose(ours, target_loss(model(ids, mask)[0], ids))
    torch.testing.assert_close(ours, peft_loss)
    train(model, tokenizer, pairs, [], STEPS, 0, CPU)
    config = model.peft.peft_config["default"]
    assert config.total_step == STEPS.max_steps  # the cell's steps
    assert model.derived_settings() == {"total_step": 2}
    assert config.rank_pattern  # update_and_allocate ran


def test_a_bad_peft_field_is_one_line_naming_it(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text(
        "name: g\nmodel: mini-tiny\ntasks: [{name: mini-e2e}]\n"
        "methods: [{name: peft, settings: {config: {peft_type: LORA, rank: 4}}}]\n"
    )
    with pytest.raises(UserError, match=r"methods\.0.*'rank' is not a field of LoraConfig") as err:
        load_grid(str(grid))
    assert "\n" not in str(err.value)
    for config, message in [
        ({"peft_type": "LORRA"}, "unknown peft_type 'LORRA'; did you mean 'LORA'"),
        ({"peft_type": "LORA", "task_type": "CAUSAL_LM"}, "'task_type' is set by the harness"),
        ({"peft_type": "ADALORA", "total_step": 9, "tinit": 20}, "PEFT rejects this AdaLoraConfig"),
    ]:
        with pytest.raises(ValueError, match=message):
            peft_config(config)
    with pytest.raises(ValueError, match="this preset is peft_type IA3"):
        METHODS.get("peft-ia3").Settings(config={"peft_type": "LORA"})


def test_a_preset_takes_overrides_and_counts_as_peft_does(tokenizer):
    model = build_preset("LORA", "gpt2", tokenizer, r=2)
    reference = get_peft_model(
        load_model("mini-tiny", seed=0).model, peft_config({"peft_type": "LORA", "r": 2})
    )
    assert count(model.trainable_parameters()) == reference.get_nb_trainable_parameters()[0]
    assert set(model.stored_state()) == set(get_peft_model_state_dict(reference))
