"""``geoproxy set server BACKEND/SERVER state|weight VALUE``: one write to Redis, which every
worker of every host learns within milliseconds.

It imports only what the write needs (a Redis client, the health store and its scripts), not
the configuration nor the fleet state: an operator waits on it.
"""

from __future__ import annotations

import sys

from geoproxy.balance.view import AdminState
from geoproxy.state.connect import REDIS_ERRORS, RedisUrlError, connect, redact
from geoproxy.state.health_store import HealthStore
from geoproxy.state.scripts import Scripts

REDIS_TIMEOUT = 5.0  # seconds: an operator's command may wait for a slow Redis a little


def set_server(redis_url: str, target: str, field: str, value: str) -> int:
    """``geoproxy set server BACKEND/SERVER state|weight VALUE``: every worker of every host
    learns it within milliseconds (``state/watcher.py``)."""
    backend, slash, server = target.partition("/")
    if not slash or not backend or not server:
        print(f"geoproxy set: expected BACKEND/SERVER, got {target!r}", file=sys.stderr)
        return 2
    try:
        client = connect(redis_url, REDIS_TIMEOUT)
    except RedisUrlError as error:
        print(f"geoproxy set: {error}", file=sys.stderr)
        return 2
    health = HealthStore(client, Scripts())
    try:
        if field == "state":
            try:
                state = AdminState(value)
            except ValueError:
                print(
                    f"geoproxy set: state must be ready, drain or maint, not {value!r}",
                    file=sys.stderr,
                )
                return 2
            health.set_admin(backend, server, state)
        else:
            health.set_weight(backend, server, _weight(health, backend, server, value))
    except (KeyError, ValueError) as error:
        print(f"geoproxy set: {error.args[0] if error.args else error}", file=sys.stderr)
        return 1
    except REDIS_ERRORS as error:
        print(f"geoproxy set: cannot reach {redact(redis_url)}: {error}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"{backend}/{server}: {field} set to {value}")
    return 0


def _weight(health: HealthStore, backend: str, server: str, value: str) -> int:
    """An absolute weight, or ``N%`` of the configured one, rounded down and capped at 256 as
    HAProxy's runtime API does (150% of 1 is 1, 3000% of 10 is 256)."""
    if value.endswith("%"):
        if not value[:-1].isdigit():
            raise ValueError(f"a relative weight must be a positive N%, not {value!r}")
        configured = int(health.server_state(backend, server).get("cfg_weight", 1))
        return min(configured * min(int(value[:-1]), 25600) // 100, 256)
    if not value.isdigit():
        raise ValueError(f"weight must be a number from 0 to 256 or N%, not {value!r}")
    return int(value)
