"""bench.engine: encoding, training, precision, generation and beam search."""
