"""Typed decorator registries for tasks and methods, and the plugins that add to them.

Adding a task or method is one new module in `tasks/` or one folder in `methods/` that registers
itself: a registry imports every module of its package on first lookup, so no central list
exists. Methods and tasks from outside the repository come as plugins: modules named in a grid
(`plugins:`) or with `--plugin`, and the modules of the installed entry-point group
`bench.plugins`; importing one registers what it defines.

A registry checks what it is given (a `Method` or `Task` subclass) when it is registered, and
answers a miss with the nearest name. Metric suites have their registry beside their type, in
`bench.metrics.suites`.
"""

from __future__ import annotations

import importlib
import pkgutil
import traceback
from collections.abc import Callable, Iterable
from functools import cache
from importlib import metadata
from typing import Any, Generic, TypeVar

from bench.errors import UserError, did_you_mean
from bench.spec.method_entry import Method
from bench.spec.settings import MethodSettings
from bench.spec.task import Task

T = TypeVar("T")
PLUGIN_GROUP = "bench.plugins"


class Registry(Generic[T]):
    """Name -> entry, filled by `register`. Entries are subclasses of `base` (with `classes`)
    or instances of it; `discover` names the packages whose modules register themselves. With
    `named`, registering sets the entry's `name`, so that a name is written once."""

    def __init__(
        self,
        kind: str,
        base: type,
        discover: tuple[str, ...] = (),
        classes: bool = True,
        named: bool = False,
    ) -> None:
        self.kind = kind
        self._base = base
        self._classes = classes
        self._named = named
        self._discover = discover
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            fits = (
                isinstance(entry, type) and issubclass(entry, self._base)
                if self._classes
                else isinstance(entry, self._base)
            )
            if not fits:
                what = "a subclass" if self._classes else "an instance"
                raise TypeError(
                    f"{self.kind} {name!r}: {entry!r} is not {what} of {self._base.__name__}"
                )
            known = self._entries.get(name)
            if known is not None and known is not entry:
                raise UserError(
                    f"{self.kind} {name!r} is registered twice, by {_origin(known)} and by "
                    f"{_origin(entry)}; rename one of them"
                )
            if self._named:
                declared = vars(entry).get("name", name)
                if declared != name:
                    raise TypeError(
                        f"{self.kind} {name!r}: {entry!r} also declares name = {declared!r}; "
                        "the registration names it, drop the attribute"
                    )
                entry.name = name  # type: ignore[attr-defined]
            self._entries[name] = entry
            return entry

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
        load_installed_plugins()

    def get(self, name: str) -> T:
        self._load()
        if name not in self._entries:
            raise UserError(f"unknown {self.kind} {name!r}; {self._hint(name)}")
        return self._entries[name]

    def _hint(self, name: str) -> str:
        names = sorted(self._entries)
        return f"{did_you_mean(name, names)}valid {self.kind}s: {', '.join(names) or 'none'}"

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._entries


def _origin(entry: Any) -> str:
    return getattr(entry, "__module__", None) or type(entry).__module__


TASKS: Registry[type[Task]] = Registry("task", Task, discover=("bench.tasks",), named=True)
METHODS: Registry[type[Method]] = Registry("method", Method, discover=("bench.methods",))


def register_method(
    name: str,
    settings: type[MethodSettings],
    model: str | type,
    description: str = "",
    keeps_dependencies: bool = False,
    plain: str | None = None,
    source: str | None = None,
) -> type[Method]:
    """Register a method in one call: its settings class and its `AdaptedLM` class (or its
    import path, "package.module:Class", so that validating a grid never imports it); `plain`:
    the import path ("package.module:function") of its plain-library equivalent, which
    `bench perf device` races it against; `source`: whose implementation it is (`bench list
    methods` shows it): a library's name for a method it supplies whole; by default "bench"
    for ours and a plugin's top-level package for its methods."""
    if source is None:
        module = settings.__module__
        source = "bench" if module.startswith("bench.") else module.split(".")[0]
    method = type(
        f"{settings.__name__.removesuffix('Settings') or 'Custom'}Method",
        (Method,),
        {
            "Settings": settings,
            "model": model,
            "description": description,
            "keeps_dependencies": keeps_dependencies,
            "plain": plain,
            "source": source,
            "__module__": settings.__module__,
        },
    )
    return METHODS.register(name)(method)


def load_plugins(modules: Iterable[str]) -> None:
    """Import plugin modules (from a grid's `plugins:` or `--plugin`): they register methods,
    tasks or metric suites. A module that cannot be imported is the user's to fix."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UserError(
                f"plugin {module!r} cannot be imported ({type(error).__name__}: {error}); "
                "install its package or check the module name"
            ) from None
        except Exception as error:  # the plugin's own bug, at import: its author's to fix
            raise UserError(f"plugin {module!r} failed on import: {_where(error)}") from None


@cache
def load_installed_plugins() -> None:
    """Import each module of the entry-point group `bench.plugins`, once per process."""
    for entry_point in metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry_point.load()
        except ImportError as error:
            raise UserError(
                f"installed plugin {entry_point.name!r} ({entry_point.value}) cannot be imported "
                f"({type(error).__name__}: {error}); reinstall or uninstall its package"
            ) from None
        except Exception as error:
            raise UserError(
                f"installed plugin {entry_point.name!r} ({entry_point.value}) failed on import: "
                f"{_where(error)}; fix or uninstall its package"
            ) from None


def _where(error: Exception) -> str:
    """A plugin's import error as `Type: message (file, line N)`, its last frame in the plugin."""
    if isinstance(error, SyntaxError):
        return f"SyntaxError: {error.msg} ({error.filename}, line {error.lineno})"
    frames = traceback.extract_tb(error.__traceback__)
    last = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {message}{last}"
