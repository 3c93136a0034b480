"""bench.results: the store, bundles and the regression gate."""
