"""A worker's server for one listening socket of a frontend that an operator may disable
(``disable frontend``; ``frontend_gate.py`` says who decides and when).

Rules:
1. A paused listener accepts nothing: its socket is not watched. Every way gevent has of
   watching it again (``start``, the retry after an accept error, the pool that frees a slot
   after being full) goes through ``start_accepting``, which a paused listener declines.
2. The connections it accepted are not its to stop: they are served on while it is paused.
3. ``accept`` on a socket the master took out of LISTEN fails with EINVAL, which gevent's
   StreamServer takes as fatal (it would close the socket for good, and this worker would
   never serve that frontend again). Here it means "paused elsewhere, not yet here": the
   listener stops watching and looks again after ``RETRY`` seconds, until the worker's gate
   pauses it or the master listens again.
"""

from __future__ import annotations

import errno
from typing import Any

from gevent.server import StreamServer

RETRY = 0.05  # seconds between two looks at a socket out of LISTEN (rule 3)


class FrontendListener(StreamServer):  # type: ignore[misc]
    """gevent's StreamServer on ``listener`` (a socket of frontend ``frontend``; None: no
    frontend known), paused from the start when ``paused``."""

    def __init__(
        self, listener: Any, frontend: str | None, *, paused: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(listener, **kwargs)
        self.frontend = frontend
        self.paused = paused

    def start_accepting(self) -> None:
        if not self.paused:  # rule 1
            super().start_accepting()

    def pause(self) -> None:
        """Accept no new connection (those accepted are served on)."""
        if not self.paused:
            self.paused = True
            self.stop_accepting()

    def resume(self) -> None:
        """Accept again (unless the server was closed meanwhile: the worker is leaving)."""
        if self.paused:
            self.paused = False
            self._start_accepting_if_started()

    def do_read(self) -> Any:
        try:
            return super().do_read()
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
        self.stop_accepting()  # rule 3: look again in a moment
        self._timer = self.loop.timer(RETRY)
        self._timer.start(self._start_accepting_if_started)
        return None
