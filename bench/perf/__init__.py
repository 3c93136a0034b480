"""The measuring tools: everything `python -m bench perf` runs, kept out of the engine.

One module per job:
- `grid`: `perf grid`, a grid's cold, warm and rerun wall time as `bench run` commands;
- `executors`: `perf executors`, the local executor on all cores and on one thread against
  worker processes and Ray;
- `contention`: `perf contention`, one cell quiet and beside a busy process, per executor;
- `gate`: `perf gate`, the regression gate's false alarms and power, simulated from seed pools;
- `overhead`: `perf overhead`, the harness's training loop against a plain PyTorch loop that
  must train the same weights bit for bit;
- `metrics`: `perf metrics`, the E2E metric suite and `bench score` as a user runs it;
- `device`: `perf device`, every method with a plain-library equivalent (`Method.plain`),
  harness against plain, training and decoding tokens/s, MFU and peak memory;
- `loops`: the two timed training loops the benchmarks race (`harness_timing`, `plain_loop`);
- `workload`: what `perf device` feeds both sides (sizes, pairs, prompts, cells, batches);
- `flops`: the FLOP model and the GPUs' peaks that MFU rests on;
- `machine`: where a result was measured, and the clock every benchmark reads.

May import: any layer below the command line. No engine, results or run module imports it.
"""
