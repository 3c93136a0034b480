"""bench.run: the runner and the Python API."""
