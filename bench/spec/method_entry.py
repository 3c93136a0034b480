"""A registered method: its settings, and where the module that wraps a base model lives.

This is the torch-free half of a method (the half a grid needs to validate and expand): the
settings class (`config.py` of a method folder) and a reference to the module that wraps a base
model (`model.py`), imported only when a cell is built (`bench.engine.adapted.build_method`).
Methods register in one call, `bench.spec.registry.register_method(name, Settings,
"pkg.model:ModelClass")`, which may also name the method's plain-library equivalent
(`plain="pkg.plain:function"`, a reference too: only the measuring tools import it).

The model class is an `AdaptedLM` (`bench.engine.adapted`, the method/engine contract) whose
constructor takes `(base, settings, context)`.
"""

from __future__ import annotations

from typing import ClassVar

from bench.spec.settings import Dependency, MethodSettings


class Method:
    """A method as the registry holds it: a class, never instantiated."""

    Settings: ClassVar[type[MethodSettings]] = MethodSettings
    model: ClassVar[str | type | None] = None  # "module:Class", or the class itself
    description: ClassVar[str] = ""
    keeps_dependencies: ClassVar[bool] = False  # hybrids that need their dependencies to decode
    source: ClassVar[str] = "bench"  # whose implementation: bench (ours) or the library's name
    # "module:function" of the same method built by the library a user would reach for (PEFT,
    # adapters, transformers), `(base, settings, derived) -> (model, what it is)`: the plain
    # side `bench perf device` measures the method against; None: not measured there.
    plain: ClassVar[str | None] = None

    @classmethod
    def dependencies(cls, settings: MethodSettings) -> dict[str, tuple[str, Dependency]]:
        """Hybrids: role -> (method name, dependency) of the stored cells this method reuses."""
        return settings.dependencies()
