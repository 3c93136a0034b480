"""bench.tasks and bench.data: task loaders, downloads, data stats."""
