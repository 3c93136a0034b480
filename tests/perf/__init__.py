"""The measuring tools (bench.perf): benchmark commands and their plain reference loops."""
