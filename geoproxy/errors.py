"""Errors typed by what the caller must do.

Configuration errors carry every diagnostic found (HAProxy reports them all, then refuses to
start). Upstream errors are split as urllib3 splits them: before anything was sent to a server
(``ConnectFailed``: a retry or a redispatch is safe) and after (anything else: the request is never
sent again, DESIGN.md invariant 5). Each upstream error knows the status HAProxy answers with and
the termination state HAProxy would log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the config package raises ConfigError: no import cycle at run time
    from geoproxy.config.model import Diagnostic


class ConfigError(Exception):
    """The configuration cannot be used. ``errors`` holds every problem found, in file order."""

    def __init__(self, errors: Sequence[Diagnostic], warnings: Sequence[Diagnostic] = ()) -> None:
        self.errors = tuple(errors)
        self.warnings = tuple(warnings)
        super().__init__("\n".join(str(error) for error in self.errors))


class UpstreamError(Exception):
    """Something went wrong between geoproxy and a server.

    ``status`` is what HAProxy answers the client with; ``termination`` the two-letter
    termination state of HAProxy's logs (first letter: who ended it, second: in which phase).
    ``retryable`` is true only when no byte of the request reached the server.
    """

    status: int = 502
    termination: str = "SH"
    retryable: bool = False


class ConnectFailed(UpstreamError):
    """The connection to the server could not be made (refused, unreachable, timeout connect)."""

    status = 503
    termination = "SC"
    retryable = True


class ServerTimeout(UpstreamError):
    """``timeout server`` expired while waiting for the server's response."""

    status = 504
    termination = "sH"


class BadResponse(UpstreamError):
    """The server closed the connection, or sent something that is not a valid HTTP response."""

    status = 502
    termination = "SH"


class ClientGone(Exception):
    """The client went away (or stalled past ``timeout client``) while we were reading from it;
    nothing is answered."""

    termination = "CD"


class SilentClose(ClientGone):
    """The answer is an empty ``errorfile``: HAProxy closes the connection without a byte, so
    the worker treats it as a client that is gone (nothing is written, the connection closes)."""

    termination = "PR"
