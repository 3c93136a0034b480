"""User-facing errors.

A `UserError` is bad input (an unknown name, a bad YAML key, a missing file or dependency): the CLI
prints its one-line message and exits with status 2, without a traceback. Anything else is a bug
and is allowed to trace back.
"""


class UserError(Exception):
    """Bad input that the user can fix; the message names the problem and the fix."""
