"""``http-reuse never|safe|aggressive|always``: how idle server connections are shared.

geoproxy's pools (``geoproxy.forward.pool``) give an idle keep-alive connection to whichever
request of the worker needs that server next, which is HAProxy's ``always``; ``aggressive`` and
``always`` mean that, and ``safe`` (HAProxy's default, which keeps the first request of a client
connection on a connection of its own) is read the same way and said so in the README.
``never`` (a server connection private to one client connection, which NTLM-style
authentication needs) is refused: geoproxy cannot give it.
"""

from __future__ import annotations

from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft

_SHARED = ("safe", "aggressive", "always")


def parse_http_reuse(proxy: ProxyDraft, line: Line) -> None:
    mode = line.arg(0)
    line.at_most(1)
    if mode == "never":
        line.fail("'http-reuse never' is not supported by geoproxy: its server connections are "
                  "shared by the requests of every client (as 'http-reuse always'), never "
                  "private to one client connection.")
    if mode not in _SHARED:
        line.fail("'http-reuse' only supports 'never', 'safe', 'aggressive', 'always'.")
