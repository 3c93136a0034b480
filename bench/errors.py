"""User-facing errors.

A `UserError` is bad input (an unknown name, a bad YAML key, a missing file or dependency): the CLI
prints its one-line message and exits with status 2, without a traceback. Anything else is a bug
and is allowed to trace back.
"""

import difflib


class UserError(Exception):
    """Bad input that the user can fix; the message names the problem and the fix."""


def did_you_mean(name: str, names: list[str]) -> str:
    """"did you mean 'x'? " for the nearest of `names`, or "" when none is near."""
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""
