"""bench.methods: each method built, counted, trained and reloaded."""
