"""bench.mini: the mini world and the shipped mini LMs."""
