"""Single key presses from the terminal, for ``geoproxy top``'s ``q``.

Rules:
1. Only a terminal is read: with stdin a pipe or a file, ``wait`` just sleeps (a script's
   ``geoproxy top --count N`` must not stop on its input's bytes or spin on its end of file).
2. The terminal goes to cbreak mode (keys arrive one by one, not echoed) for the ``with``
   block only, and gets its settings back however the block ends; Ctrl-C still interrupts.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from types import TracebackType
from typing import Any, TextIO

QUIT_KEYS = b"qQ"


class QuitKey:
    """``with QuitKey() as keys: ... keys.wait(1.0)`` (module rules)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        stream = sys.stdin if stream is None else stream
        self._fd: int | None = None
        with contextlib.suppress(AttributeError, ValueError, OSError):
            if stream.isatty():
                self._fd = stream.fileno()
        self._saved: list[Any] | None = None

    @property
    def reads_keys(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> QuitKey:
        if self._fd is not None:
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None and self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as ``q`` is pressed (then it returns early)."""
        deadline = time.monotonic() + seconds
        while self._fd is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select([self._fd], [], [], remaining)
            if not ready:
                return False
            pressed = os.read(self._fd, 64)
            if not pressed:  # the terminal hung up: nothing more will be pressed
                break
            if any(key in QUIT_KEYS for key in pressed):
                return True
        time.sleep(max(deadline - time.monotonic(), 0))
        return False
