"""Tasks: each module registers one or more `bench.spec.task.Task`s with `@TASKS.register(name)`."""
