"""The Lua scripts of ``state/lua/``: read once per process, called by EVALSHA.

redis-py's ``Script`` objects ask ``SCRIPT EXISTS`` before every pipeline that carries one,
which would add a round trip to each heartbeat and each release flush. Here a pipeline carries
plain EVALSHA commands; only a ``NOSCRIPT`` answer (Redis restarted empty) loads the scripts
again, and the caller retries once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis
from redis.client import Pipeline

from geoproxy.state.fastpath import FastCaller

SCRIPT_NAMES = (
    "acquire",
    "release",
    "heartbeat",
    "claim_checks",
    "record_check",
    "observe",
    "queue",
)


class Scripts:
    def __init__(self) -> None:
        lua = resources.files("geoproxy.state").joinpath("lua")
        self._text = {name: lua.joinpath(f"{name}.lua").read_text() for name in SCRIPT_NAMES}
        self._sha = {
            name: hashlib.sha1(text.encode()).hexdigest() for name, text in self._text.items()
        }

    def call(
        self,
        client: redis.Redis,
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
        """Add one script call to a pipeline; run it with ``execute``."""
        pipe.evalsha(self._sha[name], len(keys), *keys, *args)

    def load(self, client: redis.Redis) -> None:
        for text in self._text.values():
            client.script_load(text)


def execute(pipe: Pipeline, scripts: Scripts, client: redis.Redis) -> list[Any]:
    """Execute a pipeline that carries script calls; on NOSCRIPT, load them and run it again.

    Only safe for pipelines whose commands can run twice (the scripts' effects are all-or-nothing
    per script, and a NOSCRIPT reply means that script did not run).
    """
    commands = list(pipe.command_stack)
    try:
        return pipe.execute()
    except redis.exceptions.NoScriptError:
        scripts.load(client)
        pipe.command_stack = commands
        return pipe.execute()
