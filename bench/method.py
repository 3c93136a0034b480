"""A registered method: its settings, where its module lives, and how a cell builds it.

This is the torch-free half of a method (the half a grid needs to validate and expand): the
settings class (`config.py` of a method folder) and a reference to the module that wraps a base
model (`model.py`), imported only when a cell is built. Most methods register in one call,
`bench.registry.register_method(name, Settings, "pkg.model:ModelClass")`; a method that needs
its own build logic subclasses `Method` and registers with `@METHODS.register(name)`.

The model class is an `AdaptedLM` (`bench.adapted`, the method/engine contract) whose
constructor takes `(base, settings, context)`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from bench.spec import Dependency, MethodSettings

if TYPE_CHECKING:
    from bench.adapted import AdaptedLM, BuildContext


class Method:
    """A method as the registry holds it: a class, never instantiated."""

    Settings: ClassVar[type[MethodSettings]] = MethodSettings
    model: ClassVar[str | type | None] = None  # "module:Class", or the class itself
    description: ClassVar[str] = ""
    keeps_dependencies: ClassVar[bool] = False  # hybrids that need their dependencies to decode

    @classmethod
    def dependencies(cls, settings: MethodSettings) -> dict[str, tuple[str, Dependency]]:
        """Hybrids: role -> (method name, dependency) of the stored cells this method reuses."""
        return settings.dependencies()

    @classmethod
    def model_class(cls) -> type[AdaptedLM]:
        """The module class, imported on first use (this is where torch comes in)."""
        from bench.adapted import AdaptedLM

        target: Any = cls.model
        if isinstance(target, str):
            module, _, attribute = target.partition(":")
            target = getattr(importlib.import_module(module), attribute)
        if not (isinstance(target, type) and issubclass(target, AdaptedLM)):
            raise TypeError(f"{cls.__name__}.model must name an AdaptedLM subclass, not {target!r}")
        return target

    @classmethod
    def build(
        cls, base: Any, settings: MethodSettings, context: BuildContext | None = None
    ) -> AdaptedLM:
        """Wrap `base` (a transformers model) into the method's adapted model."""
        from bench.adapted import BuildContext

        return cls.model_class()(base, settings, context or BuildContext())
