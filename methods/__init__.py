"""Methods, one folder each (PEFT's layout): `config.py` holds the settings (torch-free),
`model.py` the `AdaptedLM` that wraps a base model, and `__init__.py` registers the two with one
`bench.spec.registry.register_method` call. Validating a grid imports only the first and the
last."""
