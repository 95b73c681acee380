"""The Lua scripts of ``state/lua/``: read once per process, called by EVALSHA.

redis-py's ``Script`` objects ask ``SCRIPT EXISTS`` before every pipeline that carries one,
which would add a round trip to each heartbeat and each release flush. Here a pipeline carries
plain EVALSHA commands; only a ``NOSCRIPT`` answer (Redis restarted empty, or a Cluster primary
that never saw them) loads the scripts again (on every primary of a Cluster), and the caller
retries once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

import redis
from redis.client import Pipeline

from geoproxy.state.connect import Client
from geoproxy.state.fastpath import FastCaller

SCRIPT_NAMES = (
    "acquire",
    "stats",
    "heartbeat",
    "claim_checks",
    "record_check",
    "observe",
    "queue",
    "record_addresses",
    "set_admin",
    "set_health",
)


@functools.cache
def script_text(name: str) -> str:
    """The text of script ``name``, as Redis runs it."""
    return resources.files("geoproxy.state").joinpath("lua", f"{name}.lua").read_text()


def script_sha(name: str) -> str:
    return hashlib.sha1(script_text(name).encode()).hexdigest()


class Scripts:
    def __init__(self) -> None:
        self._text = {name: script_text(name) for name in SCRIPT_NAMES}
        self._sha = {name: script_sha(name) for name in SCRIPT_NAMES}

    def call(
        self,
        client: Client,
        name: str,
        keys: Sequence[str],
        args: Sequence[Any],
        fast: FastCaller | None = None,
    ) -> Any:
        """Run one script in one round trip (two if Redis lost its script cache), on the
        ``fast`` path when there is one."""
        sha = self._sha[name]
        try:
            if fast is not None:
                return fast.evalsha(sha, keys, args)
            return client.evalsha(sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.load(client)
            if fast is not None:
                return fast.evalsha(sha, keys, args)
            return client.evalsha(sha, len(keys), *keys, *args)

    def queue(self, pipe: Pipeline, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        """Add one script call to a pipeline; run it with a ``Batch``. (Through
        ``execute_command``: a Cluster pipeline refuses its ``evalsha`` method, yet routes an
        EVALSHA by its keys, which here always share one slot.)"""
        cast(Any, pipe).execute_command("EVALSHA", self._sha[name], len(keys), *keys, *args)

    def load(self, client: Client) -> None:
        for text in self._text.values():
            client.script_load(text)


class Batch:
    """One pipeline of commands and script calls, sent in one round trip per node.

    A ``NOSCRIPT`` reply reruns only the script calls that got it, after loading the scripts:
    the other commands of the pipeline (counters among them) ran once and must not run again.
    Any other error reply, or a connection failure, is raised after the whole batch ran.
    """

    def __init__(self, client: Client, scripts: Scripts) -> None:
        self.pipe: Pipeline = client.pipeline(transaction=False)
        self._client = client
        self._scripts = scripts
        self._calls: dict[int, tuple[str, Sequence[str], Sequence[Any]]] = {}

    def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> None:
        self._calls[len(self.pipe)] = (name, keys, args)
        self._scripts.queue(self.pipe, name, keys, args)

    def execute(self) -> list[Any]:
        replies = self.pipe.execute(raise_on_error=False)
        missing = [i for i in self._calls if isinstance(replies[i], redis.exceptions.NoScriptError)]
        if missing:
            self._scripts.load(self._client)
            again = self._client.pipeline(transaction=False)
            for i in missing:
                self._scripts.queue(again, *self._calls[i])
            for i, reply in zip(missing, again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies
