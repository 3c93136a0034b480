"""The embedded mini world: synthetic data-to-text tasks and a small LM pretrained on its prose.

Its recipe (`config`) is read by the spec layer's model specs, so it may import only the base
modules (`bench.errors`, `bench.progress`, `bench.cache`).
"""
