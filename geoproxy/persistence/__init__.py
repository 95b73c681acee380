"""Session persistence, pure: HAProxy's cookie modes, Tomcat jvmRoute, stick-table samples.

The rules live at the top of ``cookies.py`` (cookie modes), ``jvmroute.py`` (route mode),
``cacheability.py`` (``nocache``) and ``samples.py`` (sample fetches).
"""

from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.dynamic import dynamic_cookie, server_cookie
from geoproxy.persistence.result import (
    KEEP,
    NO_PERSISTENCE,
    CookieStatus,
    Keep,
    Persistence,
    PersistenceRequest,
    RewrittenResponse,
    SetCookieStatus,
)
from geoproxy.persistence.samples import SampleSource, fetch

__all__ = [
    "KEEP",
    "NO_PERSISTENCE",
    "CookieStatus",
    "Keep",
    "Persistence",
    "PersistenceRequest",
    "RewrittenResponse",
    "SampleSource",
    "SetCookieStatus",
    "dynamic_cookie",
    "fetch",
    "read_request",
    "rewrite_response",
    "server_cookie",
]
