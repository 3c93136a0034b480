"""The run layer: the driver that turns cells into stored results.

Owns the runner (`runner`: claims, resumption, the one writer of the store), the executors that
run claimed cells (`executor`: in this process; `ray_executor`: as Ray tasks), how Ctrl-C and
SIGTERM end work (`signals`), the Python API (`api`: `run_grid`, `load_results`) and
`bench predict` (`predict`: new inputs through a stored cell's method).

May import: the results and reports layers and below.
"""
