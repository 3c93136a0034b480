"""Ctrl-C and SIGTERM around work that must end in a known state.

Python raises KeyboardInterrupt wherever the main thread happens to be; inside a `__del__` (which
plotting and image libraries run while a report renders) it is printed and dropped, and the
command would go on to exit 0. `interrupts_kept` remembers the signal and raises it once the
block ends, so an interrupted command always ends as interrupted (exit 130).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def interrupts_kept() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block ends it with KeyboardInterrupt, even when code in the
    block swallowed the exception it raised."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    noticed: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        noticed.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupt), signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    if noticed:
        raise KeyboardInterrupt
