"""The contract between methods and the engine: an adapted language model. The bottom layer of
the engine: training (`bench.engine.training`) and decoding (`bench.engine.generation`) sit above
it.

A method's `model.py` (in `methods/`) wraps a base model into an `AdaptedLM`. The training loop
and the decoder only talk to this interface, so a method decides what is trained
(`requires_grad`), what is stored after training (`stored_state`), and what the model sees
before the input (a prefix of key/value activations, for prefix-tuning), while position
handling, padding, caching and the difference between decoder-only and encoder-decoder models
live here once.

Decoder-only models see `source <eos> target` as one sequence. Encoder-decoder models (BART) read
the source in the encoder and the decoder sees `<start> target`; `forward` then takes the source
as `source=(ids, mask)` on its first call and keeps the encoded source in its returned state.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn
from transformers import (
    DynamicCache,
    EncoderDecoderCache,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.cache_utils import DynamicLayer
from transformers.modeling_outputs import BaseModelOutput

if TYPE_CHECKING:
    from bench.spec.method_entry import Method
    from bench.spec.settings import MethodSettings

IGNORE = -100
Source = tuple[torch.Tensor, torch.Tensor]  # (ids, mask) of an encoder input


@dataclass
class Batch:
    """Right-padded training tensors. `labels[:, t + 1]` is what position t must predict."""

    input_ids: torch.Tensor  # decoder-only: source and target; encoder-decoder: decoder side
    attention_mask: torch.Tensor
    labels: torch.Tensor  # IGNORE outside the target
    source: Source | None = None  # encoder-decoder models only

    def to(self, device: torch.device) -> Batch:
        source = None if self.source is None else tuple(t.to(device) for t in self.source)
        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.labels.to(device),
            source,
        )


def target_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the target tokens (the source is masked out with IGNORE)."""
    return nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE
    )


@dataclass
class EncodedSource:
    """Decoding state of an encoder-decoder model: the decoder cache plus the encoded source.

    It follows the beam like a cache does (`batch_repeat_interleave`, `reorder_cache`).
    """

    cache: EncoderDecoderCache
    states: torch.Tensor  # encoder output [rows, source length, d]
    mask: torch.Tensor  # [rows, cross prefix + source length]

    def batch_repeat_interleave(self, times: int) -> None:
        self.cache.batch_repeat_interleave(times)
        self.states = self.states.repeat_interleave(times, dim=0)
        self.mask = self.mask.repeat_interleave(times, dim=0)

    def reorder_cache(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        self.states = self.states[rows]
        self.mask = self.mask[rows]


@dataclass(frozen=True)
class Export:
    """What `AdaptedLM.export` wrote into a folder, in a library's own format."""

    format: str  # transformers | peft | adapters
    loads_with: str  # Python that sets `model` from DIR (the folder) and BASE (the base model)
    needs_base: bool = True  # it is loaded onto the base model (False: the folder is the model)


class AdaptedLM(nn.Module):
    """A language model plus a method's parameters. The default trains and stores the whole base."""

    def __init__(self, base: PreTrainedModel) -> None:
        super().__init__()
        self.base = base
        self.is_encoder_decoder = bool(base.config.is_encoder_decoder)

    base_dropout: bool = True  # methods that freeze the base may keep its dropout off

    def train(self, mode: bool = True) -> AdaptedLM:
        """Training mode, except for a frozen base whose dropout the method keeps off."""
        super().train(mode)
        if mode and not self.base_dropout:
            self.base.eval()
        return self

    # --- what the method trains and stores -------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def derived_settings(self) -> dict[str, Any]:
        """Settings the method derived from the base at build time, recorded with the cell."""
        return {}

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The objective the training loop minimizes; the dev loss is always `target_loss`."""
        logits, _ = self(batch.input_ids, batch.attention_mask, source=batch.source)
        return target_loss(logits, batch.labels)

    def start_training(self, total_steps: int) -> None:
        """Called once before the first optimizer step, with the number of steps to come."""

    def after_step(self, step: int) -> None:
        """Called after optimizer step `step` (from 0), before its gradients are cleared (a
        method that reads them, such as AdaLoRA's rank allocation)."""

    def finalize(self) -> None:
        """Called once after training: drop what only training needs (e.g. a reparametrization)."""

    def stored_state(self) -> dict[str, torch.Tensor]:
        """The tensors a user must keep to reproduce this model on top of the public base."""
        return {name: p.detach() for name, p in self.base.named_parameters()}

    def load_stored(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.base.load_state_dict(state, strict=False)
        tied = {k for k in missing if k.endswith("lm_head.weight")}
        if set(missing) - tied or unexpected:
            raise ValueError(
                f"stored state does not fit: missing {missing}, unexpected {unexpected}"
            )

    # --- outside the harness ----------------------------------------------------------------
    def export(self, folder: Path) -> Export | None:
        """Write the trained model into `folder` in the format its users load it with; None
        where no library has one (the harness's own folder is written instead). The default,
        for methods that store the whole base: a transformers `save_pretrained` folder."""
        self.base.save_pretrained(folder)
        auto = "AutoModelForSeq2SeqLM" if self.is_encoder_decoder else "AutoModelForCausalLM"
        return Export("transformers", f"model = transformers.{auto}.from_pretrained(DIR)", False)

    def parts(self) -> dict[str, AdaptedLM]:
        """A hybrid that decodes with other trained models: role -> model (exported apart)."""
        return {}

    # --- what the model sees before the input ----------------------------------------------
    prefix_length: int = 0  # key/value positions every (decoder) self-attention layer starts with
    cross_prefix_length: int = 0  # encoder-decoder: extra positions of the cross-attention
    prefix_rows: bool = False  # the prefix is rows the base runs on (prompt tokens), not only keys

    def prefix_cache(self, batch_size: int) -> DynamicCache | EncoderDecoderCache:
        """The cache every sequence starts from: empty unless a method adds a prefix."""
        if self.is_encoder_decoder:
            return EncoderDecoderCache(DynamicCache(), DynamicCache())
        return DynamicCache()

    def encode(self, source_ids: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        """Encoder-decoder models: the encoder's output for a right-padded source."""
        encoder = self.base.get_encoder()
        return encoder(input_ids=source_ids, attention_mask=source_mask).last_hidden_state

    @property
    def decoder_start_token_id(self) -> int:
        return self.base.config.decoder_start_token_id

    def scorer(self) -> Scorer:
        """What beam search scores next tokens with: this model alone, by default."""
        return LMScorer(self)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        cache: DynamicCache | EncodedSource | None = None,
        source: Source | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """Logits for `input_ids`, continuing `cache` (a fresh prefix cache when None).

        `attention_mask` covers every (decoder) token seen so far, cached and new, not the
        prefix: the prefix is always attended to. Decoder-only positions count real tokens only,
        so left padding is harmless, and start after the prefix, as in the paper's code (GPT-2
        numbered positions from the past length).
        """
        if self.is_encoder_decoder:
            return self._forward_encoder_decoder(input_ids, attention_mask, cache, source)
        if cache is None:
            cache = self.prefix_cache(input_ids.shape[0])
        prefix_mask = attention_mask.new_ones(attention_mask.shape[0], self.prefix_length)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0) + self.prefix_length
        keys = torch.cat([prefix_mask, attention_mask], dim=1)
        out = self.base(
            input_ids=input_ids,
            attention_mask=causal_mask(self.base, keys, input_ids.shape[1]),
            position_ids=positions[:, -input_ids.shape[1] :],
            past_key_values=cache,
            use_cache=True,
        )
        return out.logits, out.past_key_values

    def _forward_encoder_decoder(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        state: EncodedSource | None,
        source: Source | None,
    ) -> tuple[torch.Tensor, EncodedSource]:
        if state is None:
            if source is None:
                raise ValueError("an encoder-decoder model needs the source on its first call")
            source_ids, source_mask = source
            rows = source_ids.shape[0]
            cross_mask = source_mask.new_ones(rows, self.cross_prefix_length)
            state = EncodedSource(
                self.prefix_cache(rows),
                self.encode(source_ids, source_mask),
                torch.cat([cross_mask, source_mask], dim=1),
            )
        prefix_mask = attention_mask.new_ones(attention_mask.shape[0], self.prefix_length)
        out = self.base(
            encoder_outputs=BaseModelOutput(last_hidden_state=state.states),
            attention_mask=state.mask,
            decoder_input_ids=input_ids,
            decoder_attention_mask=torch.cat([prefix_mask, attention_mask], dim=1),
            past_key_values=state.cache,
            use_cache=True,
        )
        state.cache = out.past_key_values
        return out.logits, state


def causal_mask(base: nn.Module, keys: torch.Tensor, new: int) -> torch.Tensor:
    """The attention mask for `new` queries over `keys` (1 for every key a row may attend to,
    cached and new), as a plain GPT-2 under SDPA wants it: the same 4D boolean causal-and-padding
    mask that transformers would build from the 2D one, bit for bit, but in microseconds, where
    transformers' own construction (a vmap over batch, query and key indices) takes 2 to 4 ms a
    call on one CPU thread: the mini LM's beam search spends 10 to 20% of its time there.

    Where transformers would build none (no padding, and one query or nothing cached: SDPA's own
    causal flag then), and for other models, attention implementations and wrapped models (the
    `adapters` library's GPT-2 reads the 2D mask itself), the 2D mask is passed on as before.
    Whether a batch has padding is only asked on the CPU, where it costs nothing: on a GPU the
    answer is a wait for the device at every forward pass, so there the 4D mask is always built
    (the same attention, one compiled graph)."""
    plain = type(base) is GPT2LMHeadModel and base.config._attn_implementation == "sdpa"
    if not plain:
        return keys
    on_cpu = keys.device.type == "cpu"
    if on_cpu and (new == 1 or keys.shape[1] == new) and bool(keys.all()):
        return keys
    total = keys.shape[1]
    arange = torch.arange(total, device=keys.device)
    causal = arange[None, :] <= arange[total - new :, None]  # [new, total]
    return causal[None, None] & keys[:, None, None, :].bool()


class Scorer(Protocol):
    """What beam search (`bench.engine.generation`) decodes with: an adapted model's `scorer()`, or
    a mixture of several (the ensemble). It prefills prompts, scores one more token per row, and
    follows the beam's reordering."""

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Log-probabilities [rows, vocab] of the token after each left-padded prompt."""

    def expand(self, times: int) -> None:
        """Repeat every row `times` times (row i becomes rows i*times ... i*times+times-1)."""

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Append one token per row; log-probabilities of the next."""

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the state of `rows`, in that order."""


class ReorderOnAppend(DynamicLayer):
    """A self-attention cache layer for beam search that applies a reorder when the next step's
    keys and values arrive, writing the reordered cache and the new position into one new
    tensor: one copy of the cache per step, where reordering and then appending by `torch.cat`
    made two. The result is the same contiguous tensor, so attention computes the same."""

    def __init__(self, layer: DynamicLayer) -> None:
        super().__init__()
        self.lazy_initialization(layer.keys)
        self.keys, self.values = layer.keys, layer.values
        self.rows: torch.Tensor | None = None  # the reorder still to apply

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.rows = beam_idx if self.rows is None else self.rows[beam_idx]

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        cache_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rows is None or key_states.dtype != self.keys.dtype:
            if self.rows is not None:
                super().reorder_cache(self.rows)
                self.rows = None
            return super().update(key_states, value_states, cache_kwargs)
        self.keys = _reordered_then(self.keys, self.rows, key_states)
        self.values = _reordered_then(self.values, self.rows, value_states)
        self.rows = None
        return self.keys, self.values


def _reordered_then(cached: torch.Tensor, rows: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """`torch.cat([cached[rows], new], dim=-2)` in one pass over the cache."""
    length = cached.shape[-2]
    out = cached.new_empty(len(rows), cached.shape[1], length + new.shape[-2], cached.shape[-1])
    torch.index_select(cached, 0, rows, out=out[:, :, :length])
    out[:, :, length:] = new
    return out


def _reorder_on_append(cache: DynamicCache | EncodedSource) -> None:
    """Turn a prefilled cache's self-attention layers into `ReorderOnAppend` ones."""
    if isinstance(cache, EncodedSource):
        cache = cache.cache.self_attention_cache
    cache.layers = [
        ReorderOnAppend(layer) if type(layer) is DynamicLayer and layer.is_initialized else layer
        for layer in cache.layers
    ]


class LMScorer:
    """Beam search's view of one adapted model: its cache and attention mask per row.

    Decoder-only models prefill the left-padded prompt; encoder-decoder models encode the
    (right-padded) source and start the decoder from its start token.
    """

    def __init__(self, model: AdaptedLM) -> None:
        self.model = model
        self.cache: Any = None
        self.mask = torch.zeros(0)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.model.is_encoder_decoder:
            start = input_ids.new_full((input_ids.shape[0], 1), self.model.decoder_start_token_id)
            self.mask = torch.ones_like(start)
            logits, self.cache = self.model(start, self.mask, source=(input_ids, attention_mask))
        else:
            self.mask = attention_mask
            logits, self.cache = self.model(input_ids, attention_mask)
        return torch.log_softmax(logits[:, -1].float(), dim=-1)

    def expand(self, times: int) -> None:
        self.cache.batch_repeat_interleave(times)
        _reorder_on_append(self.cache)
        self.mask = self.mask.repeat_interleave(times, dim=0)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        logits, self.cache = self.model(tokens[:, None], self.mask, self.cache)
        return torch.log_softmax(logits[:, -1].float(), dim=-1)

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        self.mask = self.mask[rows]


@dataclass
class BuildContext:
    """What a method may need beyond the base model and its settings."""

    tokenizer: PreTrainedTokenizerBase | None = None  # for settings that name words
    dependencies: dict[str, AdaptedLM] = field(default_factory=dict)  # hybrids: role -> model


def model_class(method: type[Method]) -> type[AdaptedLM]:
    """The `AdaptedLM` class a registered method names, imported on first use (this is where a
    method's torch code comes in: validating a grid never gets here)."""
    target: Any = method.model
    if isinstance(target, str):
        module, _, attribute = target.partition(":")
        target = getattr(importlib.import_module(module), attribute)
    if not (isinstance(target, type) and issubclass(target, AdaptedLM)):
        raise TypeError(f"{method.__name__}.model must name an AdaptedLM subclass, not {target!r}")
    return target


def build_method(
    method: type[Method],
    base: PreTrainedModel,
    settings: MethodSettings,
    context: BuildContext | None = None,
) -> AdaptedLM:
    """Wrap `base` (a transformers model) into `method`'s adapted model."""
    return model_class(method)(base, settings, context or BuildContext())


def count(parameters: list[nn.Parameter] | dict[str, torch.Tensor]) -> int:
    tensors = parameters.values() if isinstance(parameters, dict) else parameters
    return sum(t.numel() for t in tensors)


def trained_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that training changes, by name: what methods that train a part store."""
    return {name: p.detach() for name, p in module.named_parameters() if p.requires_grad}


def load_trained_state(module: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load what `trained_state` stored onto a freshly built module of the same method."""
    expected = set(trained_state(module))
    if set(state) != expected:
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"stored state does not fit: missing {missing}, unexpected {unexpected}")
    module.load_state_dict(state, strict=False)
