"""The results layer: what finished cells left behind, and what can be said of it.

Owns the SQLite store and cell folders (`store`), the guard that keeps writes inside a results
directory (`paths`), results directories and bundles read into one shape (`bundle`), the
regression gate (`compare`) and `bench score` (`scoring`).

May import: the engine's `record` and everything below the engine; never the engine's torch
modules, so that reading results stays fast.
"""
