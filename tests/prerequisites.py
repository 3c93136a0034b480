"""What a test needs of the machine (staged data, a program): without it the test is skipped
with the reason, except under CI (`CI=true`), where it fails: CI must not pass by skipping."""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip the test for `reason`, or fail it under CI."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def program(*names: str, install: str) -> str:
    """The path of the first of `names` on PATH; `install` says how to get it."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    unavailable(f"{names[0]} not installed ({install})")
