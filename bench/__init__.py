"""bench: a benchmark harness comparing full fine-tuning with lightweight adaptation methods.

Data flows one way: grid spec -> cells -> runner -> store -> reports. From Python,
`bench.run_grid` runs a grid and `bench.load_results` reads a results directory as a DataFrame
(`bench.run.api`); importing `bench` imports neither torch nor pandas.
"""

from bench.run.api import load_results, run_grid

__all__ = ["load_results", "run_grid"]
__version__ = "0.1.0"
