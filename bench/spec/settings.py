"""What to run, as frozen data: grids, cells, and the training, decoding and method settings.

These types are the harness's spec layer (HELM's `RunSpec` / `AdapterSpec`): pydantic models
with no engine imports, so a driver process, `bench list`, a report or a test can load and
validate grids without importing torch or transformers. The engine (`bench.engine.cell`) turns a
`Cell` into results; nothing here knows how.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.spec.claims import Claim


class _Frozen(BaseModel):
    """Unknown keys are errors (a misspelled setting never silently falls back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(_Frozen):
    """Training settings of a cell; a method entry in a grid may override any of them."""

    epochs: int = Field(5, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    lr: float = Field(5e-5, gt=0)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: str = Field("linear", pattern="^(linear|constant)$")
    max_grad_norm: float = Field(1.0, gt=0)
    max_source_tokens: int = Field(512, ge=8)
    max_target_tokens: int = Field(128, ge=8)
    dev_examples: int = Field(
        0,
        ge=0,
        description="dev pairs scored for a dev loss after every epoch; 0 (the default): no dev "
        "loss, since no result uses it and scoring it is a smoke run's largest fixed cost",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="arithmetic of the forward pass and loss (`bench.engine.precision`): auto is "
        "bf16 on a CUDA GPU that supports it and fp32 elsewhere; fp16 scales the loss",
    )
    compile: bool = Field(
        False,
        description="run the base model's forward under torch.compile while training (needs a "
        "C/C++ compiler, and Triton on a GPU); decoding stays eager, its shapes change at every "
        "step. Compiling costs tens of seconds a graph, so it pays only over many steps that it "
        "makes faster: on a 2-core CPU prefix-tuning steps of the mini LMs, not fine-tuning "
        "ones; on a GPU, where fused kernels save memory traffic, it is meant for large models",
    )


class DecodeConfig(_Frozen):
    """Beam search settings of a cell (`bench.engine.generation`)."""

    rule: Literal["hf", "authors"] = Field(
        "hf",
        description="whose beam search, token for token: hf is transformers' generate as pinned "
        "(a hypothesis scored by its generated length); authors is the paper code's vendored "
        "transformers 3.x (by the whole sequence: prompt + output for GPT-2, start token + "
        "output for BART), which the paper presets use",
    )
    early_stopping: bool | Literal["never"] = Field(
        False,
        description="when a prompt stops: false once its best live beam, divided by the current "
        "length, cannot beat its worst of num_beams finished hypotheses; true once num_beams "
        "have finished; never (hf only) divides by the longest possible length instead",
    )
    num_beams: int = Field(5, ge=1, description="1 is greedy decoding")
    max_new_tokens: int = Field(100, ge=1)
    min_new_tokens: int = Field(0, ge=0, description="new tokens before an eos may end")
    length_penalty: float = Field(
        1.0, description="hypothesis score = logprob / length**penalty, the length `rule` counts"
    )
    no_newlines: bool = Field(False, description="never emit a token containing a newline")
    batch_size: int = Field(32, ge=1, description="most prompts decoded together")
    batch_tokens: int | None = Field(
        None,
        ge=1,
        description="also cap a batch's beam state at this many tokens: prompts x num_beams x "
        "(longest prompt + max_new_tokens); None: batch_size alone decides",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DecodeConfig:
        if self.rule == "authors" and self.early_stopping == "never":
            raise ValueError(
                "early_stopping: never is a setting of transformers' generate (rule: hf); the "
                "authors' search knows false and true"
            )
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(
                f"min_new_tokens ({self.min_new_tokens}) is above max_new_tokens "
                f"({self.max_new_tokens})"
            )
        return self


class Dependency(_Frozen):
    """A stored cell a hybrid method reuses: the dependency's settings and training overrides.

    The grid expands it into a cell of the same task, model, seed and training size, runs it
    first, and a hybrid cell loads its stored weights instead of training it again.
    """

    settings: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of grid `train`")


class MethodSettings(_Frozen):
    """Base of every method's settings (its `config.py`)."""

    def dependencies(self) -> dict[str, tuple[str, Dependency]]:
        """Hybrids: role -> (method name, dependency) of the stored cells the method reuses."""
        return {}

    def positions_used(self) -> int:
        """Positions of the model's window the method takes before the input (a prefix's L)."""
        return 0


class FrozenBaseSettings(MethodSettings):
    """Settings of methods that train beside a frozen base (prefix, prompt, infix)."""

    base_dropout: bool | None = Field(
        None,
        description="dropout of the frozen base while training; unset follows the authors: "
        "off for decoder-only models (their GPT-2 trainer's use_dropout=no), on for "
        "encoder-decoder ones (their BART trainer leaves BART in train mode)",
    )

    def resolved_base_dropout(self, is_encoder_decoder: bool) -> bool:
        return is_encoder_decoder if self.base_dropout is None else self.base_dropout


class TaskEntry(_Frozen):
    name: str
    splits: list[str] | None = Field(
        None, min_length=1, description="eval splits; all of the task's if unset"
    )
    n_train: list[int | None] = Field(
        [None], min_length=1, description="training-set sizes; null = all"
    )
    samples: int = Field(
        1, ge=1, description="low-data: training subsets drawn per size (the paper: 5)"
    )
    eval_limit: int | None = Field(None, ge=1, description="score the first N inputs per split")

    @field_validator("n_train")
    @classmethod
    def _positive(cls, sizes: list[int | None]) -> list[int | None]:
        if any(n is not None and n < 1 for n in sizes):
            raise ValueError("training-set sizes must be positive (or null for all)")
        return sizes


class MethodEntry(_Frozen):
    name: str
    label: str | None = Field(None, description="display name in reports")
    settings: dict[str, Any] = Field(default_factory=dict)
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of grid `train`")
    tasks: list[str] | None = Field(
        None, description="only on these tasks of the grid (per-task hyperparameters)"
    )


Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # torch's and numpy's seed range
GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # it names the report's folder


class GridSpec(_Frozen):
    name: str = Field(
        pattern=f"^{GRID_NAME.pattern}$",
        description="an identifier (it names the report's folder): letters, digits, _ . -",
    )
    description: str = ""
    plugins: list[str] = Field(
        default_factory=list, description="modules to import first: methods and tasks of yours"
    )
    model: str = "mini"
    seeds: list[Seed] = Field([0], min_length=1)
    tasks: list[TaskEntry] = Field(min_length=1)
    methods: list[MethodEntry] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    decode: DecodeConfig = DecodeConfig()
    claims: list[Claim] = Field(
        default_factory=list, description="claims about the results, checked on them"
    )


class Cell(_Frozen):
    """Everything that determines a cell's results, and nothing else (not the grid's name).

    Its identity is a hash of this resolved config: a rerun skips finished cells, and any changed
    setting (or a new version of a task's data or of the mini LM) is a new cell.
    """

    task: str
    task_version: str
    splits: tuple[str, ...]
    eval_limit: int | None
    method: str
    label: str
    settings: dict[str, Any]
    model: str
    checkpoint: str
    seed: int
    n_train: int | None
    sample: int = Field(0, description="which seeded training subset of size n_train")
    train: TrainConfig
    decode: DecodeConfig
    depends: dict[str, str] = Field(default_factory=dict, description="role -> cell id reused")

    @cached_property
    def id(self) -> str:
        # `depends` follows from the settings (they name the dependencies' settings).
        identity = self.model_dump(mode="json", exclude={"label", "depends"})
        blob = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Cell:
        """A validated copy with `update` applied and its own id: pydantic's copy would carry
        the cached `id` of this cell over to a different one."""
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        return Cell.model_validate({**fields, **(update or {})})

    def describe(self) -> str:
        size = "" if self.n_train is None else f" n={self.n_train} sample {self.sample}"
        return f"{self.task} / {self.label}{size} / seed {self.seed}"
