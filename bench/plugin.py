"""The extension API: everything a method, task or metric-suite author needs, in one place.

    from bench.plugin import AdaptedLM, MethodSettings, register_method

A plugin imports only from here; the modules behind these names may move, these names do not.
Importing `bench.plugin` imports no torch: the engine's names (`AdaptedLM`, `BuildContext`,
`Export`, `trained_state`, `load_trained_state`) are imported when first used, so a plugin that
passes its model class as a string ("mypkg.model:MyLM") keeps grid validation torch-free.

Methods: `register_method(name, Settings, Model)` with a `MethodSettings` subclass
(`FrozenBaseSettings` for methods that freeze the base) and an `AdaptedLM` subclass whose
constructor takes `(base, settings, context: BuildContext)`; its `export(folder)` writes the
trained model in a library's format (returning an `Export`) for `bench export --format model`.
Tasks: a `Task` subclass yielding `Example`s, with its `EvalSplit`s, under `@TASKS.register(name)`.
Metric suites: `register_suite(Suite(...))` of `SuiteMetric`s over `Metric`s.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from bench.metrics import Metric
from bench.metrics.suites import SUITES, Suite, SuiteMetric, register_suite
from bench.spec.registry import TASKS, register_method
from bench.spec.settings import FrozenBaseSettings, MethodSettings
from bench.spec.task import DEV, TRAIN, EvalSplit, Example, Task

if TYPE_CHECKING:
    from bench.engine.adapted import (
        AdaptedLM,
        BuildContext,
        Export,
        load_trained_state,
        trained_state,
    )

_ENGINE = ("AdaptedLM", "BuildContext", "Export", "load_trained_state", "trained_state")

__all__ = [
    "DEV",
    "SUITES",
    "TASKS",
    "TRAIN",
    "AdaptedLM",
    "BuildContext",
    "EvalSplit",
    "Example",
    "Export",
    "FrozenBaseSettings",
    "MethodSettings",
    "Metric",
    "Suite",
    "SuiteMetric",
    "Task",
    "load_trained_state",
    "register_method",
    "register_suite",
    "trained_state",
]


def __getattr__(name: str) -> Any:
    """The engine's names, imported on first use (this is where torch comes in)."""
    if name in _ENGINE:
        return getattr(importlib.import_module("bench.engine.adapted"), name)
    raise AttributeError(f"module 'bench.plugin' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
