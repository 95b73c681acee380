"""Transport: a pooled keep-alive HTTP/1.1 client to the servers, streaming both ways.

It knows nothing of balancing, persistence or Redis. ``build_request_head`` turns a WSGI
environ into the bytes sent to a server; ``send`` sends them (and the body) on a connection
from a per-process ``ServerPool`` and returns an ``UpstreamResponse`` whose body streams.
"""

from geoproxy.forward.client import BodyReader, send
from geoproxy.forward.pool import ServerPool
from geoproxy.forward.request_head import (
    KEEP,
    BodyFraming,
    Framing,
    Keep,
    UnforwardableRequest,
    build_request_head,
)
from geoproxy.forward.response import CHUNK_SIZE, UpstreamResponse

__all__ = [
    "CHUNK_SIZE",
    "KEEP",
    "BodyFraming",
    "BodyReader",
    "Framing",
    "Keep",
    "ServerPool",
    "UnforwardableRequest",
    "UpstreamResponse",
    "build_request_head",
    "send",
]
