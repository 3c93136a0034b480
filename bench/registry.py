"""Small decorator registries for tasks, methods and metric suites.

Adding a task or method is one new file in `tasks/` or `methods/` that registers itself: the
registries import every module of those packages on first lookup, so no central list exists.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

from bench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object map filled by a decorator; `discover` names the packages to import."""

    def __init__(self, kind: str, discover: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def _load(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for package_name in self._discover:
            package = importlib.import_module(package_name)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{package_name}.{module.name}")

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            valid = ", ".join(sorted(self._entries)) or "none"
            raise UserError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}")
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


TASKS: Registry = Registry("task", discover=("tasks",))
METHODS: Registry = Registry("method", discover=("methods",))
SUITES: Registry = Registry("metric suite", discover=("bench.metrics",))
