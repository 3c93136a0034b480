"""Tasks: each module registers one or more `bench.data.Task`s with `@TASKS.register(name)`."""
