"""Hub datasets through `datasets`, for users whose machines reach the Hugging Face hub.

Task modules convert hub rows (in each dataset's own schema) into `Example`s; this module only
fetches, and turns the failures a user can fix (offline, unknown id) into one line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bench.errors import UserError


def hub_rows(
    task: str, hub_id: str, split: str, config: str | None = None
) -> Iterable[dict[str, Any]]:
    """The rows of `hub_id` (`config`) `split`, or a user error naming the offline fix."""
    import datasets

    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as error:  # datasets raises many types for "cannot reach / cannot find"
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise UserError(
            f"task {task!r}: no --data-dir given and the hub dataset {hub_id!r} could not be "
            f"loaded ({reason}); pass --data-dir DIR with the official files or run "
            f"`python -m bench data download {task}`"
        ) from None
