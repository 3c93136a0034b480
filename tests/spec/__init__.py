"""bench.spec: grids, presets, the registries."""
