"""``compression algo A... | type T... | offload``: HAProxy's HTTP compression filter, as its
2.6 manual and ``cfg_parse_compression()`` define it.

Rules:
1. ``algo`` and ``type`` lines add to what earlier lines of the section named (a ``defaults``
   section's lists are inherited, as HAProxy copies them); algorithms keep their order, which
   is the preference when a client accepts several with the same q-value.
2. Algorithms: ``identity``, ``gzip``, ``deflate``, ``raw-deflate``.
3. ``offload`` removes Accept-Encoding from a request whose response will be compressed, so
   the server does not compress it first.
"""

from __future__ import annotations

import dataclasses

from geoproxy.config.context import Line, quoted_list
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import Compression, CompressionAlgorithm

_ALGORITHMS = {algorithm.value: algorithm for algorithm in CompressionAlgorithm}


def parse_compression(proxy: ProxyDraft, line: Line) -> None:
    sub = line.arg(0)
    current = proxy.settings.compression or Compression()
    if sub == "algo":
        names = line.args[1:]
        if not names:
            line.fail("parsing 'compression algo', expects <algorithm>.")
        algorithms = list(current.algorithms)
        for name in names:
            algorithm = _ALGORITHMS.get(name)
            if algorithm is None:
                line.fail(f"'compression' : '{name}' is not a supported algorithm "
                          f"(geoproxy supports {quoted_list(_ALGORITHMS)}).")
            if algorithm not in algorithms:
                algorithms.append(algorithm)
        current = dataclasses.replace(current, algorithms=tuple(algorithms))
    elif sub == "type":
        types = line.args[1:]
        if not types:
            line.fail("'compression type' expects <type>.")
        current = dataclasses.replace(current, types=current.types + tuple(types))
    elif sub == "offload":
        line.at_most(1)
        current = dataclasses.replace(current, offload=True)
    else:
        line.fail("'compression' expects 'algo', 'type' or 'offload'.")
    proxy.settings.compression = current
