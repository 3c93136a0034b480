"""Methods: each module registers a `bench.adapted.Method` with `@METHODS.register(name)`."""
