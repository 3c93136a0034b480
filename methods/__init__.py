"""Methods, one folder each (PEFT's layout): `config.py` holds the settings (torch-free),
`model.py` the `AdaptedLM` that wraps a base model, an optional `plain.py` the same method built
by the library a user would reach for (what `bench perf device` races it against), and
`__init__.py` registers them with one `bench.spec.registry.register_method` call. Validating a
grid imports only the first and the last."""
