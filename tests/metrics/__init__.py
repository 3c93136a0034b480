"""bench.metrics: the metric implementations, their suites and bootstrap."""
