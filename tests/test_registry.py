import pytest

from bench.errors import UserError
from bench.registry import METHODS, SUITES, TASKS, Registry


def test_modules_register_themselves():
    assert {"mini-e2e", "mini-webnlg"} <= set(TASKS.names())
    assert {"finetune", "prefix"} <= set(METHODS.names())
    assert {"mini", "e2e", "webnlg", "dart", "xsum"} <= set(SUITES.names())


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown method 'lora2'; valid methods: .*finetune"):
        METHODS.get("lora2")


def test_a_name_cannot_be_registered_twice():
    registry: Registry = Registry("thing")
    registry.register("a")(object())
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(object())
