import pytest

from bench.errors import UserError
from bench.metrics.suites import SUITES, Suite
from bench.spec.method_entry import Method
from bench.spec.registry import METHODS, TASKS, Registry
from bench.spec.task import Task


def test_modules_register_themselves():
    assert {"mini-e2e", "mini-webnlg"} <= set(TASKS.names())
    assert {"finetune", "prefix"} <= set(METHODS.names())
    assert {"mini", "e2e", "webnlg", "dart", "xsum"} <= set(SUITES.names())


def test_a_miss_suggests_the_nearest_name_and_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown method 'prefx'; did you mean 'prefix'\? valid"):
        METHODS.get("prefx")
    with pytest.raises(UserError, match=r"unknown task 'mini-e2'; did you mean 'mini-e2e'\?"):
        TASKS.get("mini-e2")
    with pytest.raises(UserError, match=r"unknown method 'zzz'; valid methods: .*finetune"):
        METHODS.get("zzz")


def test_registration_checks_the_base_class():
    registry: Registry[type[Method]] = Registry("method", Method)
    with pytest.raises(TypeError, match="not a subclass of Method"):
        registry.register("task")(Task)
    with pytest.raises(TypeError, match="not an instance of Suite"):
        Registry("metric suite", Suite, classes=False).register("x")(object())


def test_a_name_cannot_be_registered_twice():
    registry: Registry[type[Task]] = Registry("task", Task)

    class One(Task):
        pass

    class Two(Task):
        pass

    registry.register("a")(One)
    registry.register("a")(One)  # the same entry again (a module imported twice) is fine
    with pytest.raises(UserError, match=r"task 'a' is registered twice.*rename one"):
        registry.register("a")(Two)


def test_each_method_is_a_class_with_torch_free_settings():
    for name in METHODS.names():
        method = METHODS.get(name)
        assert issubclass(method, Method) and method.description
        folder = name.replace("-", "_") if method.source == "bench" else method.source
        assert method.Settings.__module__ == f"bench.methods.{folder}.config"
    ensemble = METHODS.get("ensemble")
    roles = ensemble.dependencies(ensemble.Settings())
    assert {role: name for role, (name, _) in roles.items()} == {
        "prefix": "prefix",
        "finetune": "finetune",
    }
