"""The spec layer: what to run, as frozen data, and the registries that give names meaning.

Owns the settings of grids, cells, training, decoding and methods (`settings`), grid loading
and expansion (`grid`) from strictly read YAML (`strict_yaml`), the task contract (`task`), the
registered method (`method_entry`), model specs and the checkpoint ids they name
(`model_specs`), and the typed registries with plugins (`registry`).

May import: `bench.errors`, `bench.progress`, `bench.cache`, `bench.mini`. Torch-free, so that
a driver, `bench list`, a report or a test validates a grid without loading the engine.
"""
