"""Calling acquire.lua directly, in its documented layout, for the script's own tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from geoproxy.state.fastpath import FastCaller
from geoproxy.state.keys import BackendKeys, backend_keys
from geoproxy.state.scripts import Scripts

HOLDER = "tester"


@dataclass(frozen=True)
class Listed:
    """A request over listed candidates: ``kind`` "first" or "least"; (name, weight, maxconn)."""

    kind: str
    candidates: Sequence[tuple[str, int, int]]
    partial: bool = False


@dataclass
class Call:
    """One acquire.lua call: releases, then requests."""

    requests: Sequence[Listed] = ()
    releases: dict[str, int] = field(default_factory=dict)
    queues: bool = False


def keys_of(backend: str) -> BackendKeys:
    return backend_keys(backend)


def call(
    client: redis.Redis,
    backend: str,
    what: Call,
    fast: FastCaller | None = None,
) -> list[tuple[str | None, int, int, int]]:
    """Run acquire.lua; returns per request (server or None, stuck, count, resend)."""
    keys = backend_keys(backend)
    script_keys = [
        keys.inflight,
        keys.worker(HOLDER),
        keys.workers,
        keys.queue_deadlines,
        keys.queue,
    ]
    args: list[Any] = [HOLDER, 1000, keys.queue_prefix if what.queues else "", len(what.releases)]
    for name, count in what.releases.items():
        args += (name, count)
    args.append(len(what.requests))
    for request in what.requests:
        header = {"first": "F", "least": "L"}[request.kind] + ("~" if request.partial else "")
        args += (header, len(request.candidates))
        for name, weight, maxconn in request.candidates:
            args += (name, weight, maxconn)
    reply = Scripts().call(client, "acquire", script_keys, args, fast)
    decided = []
    for at in range(0, 4 * len(what.requests), 4):
        server, stuck, count, resend = reply[at : at + 4]
        decided.append((server or None, stuck, count, resend))
    return decided
