"""The measuring tools: everything `python -m bench perf` runs, kept out of the engine.

May import: any layer below the command line. No engine, results or run module imports it.
"""
