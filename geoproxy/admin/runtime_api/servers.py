"""Server and frontend commands: ``set server``, ``get weight``, ``set weight``, ``enable`` /
``disable server``, ``set maxconn server``, ``shutdown sessions server``, and ``enable`` /
``disable frontend``. Answers and errors are HAProxy 2.6's, word for word (a few of its error
texts have no final newline; kept so).

Rules:
1. A change goes to the fleet's shared state, never to this host alone; a successful change
   answers nothing.
2. ``B/S`` is looked up in the fleet's report (what Redis describes), as ``geoproxy set`` does.
3. Weights: ``N`` (0-256) or ``N%`` of the configured weight, capped at 256, as HAProxy's
   ``server_parse_weight_change_request``; a backend with a static algorithm (``static-rr``,
   map-based hashing) only takes 0% and 100%.
4. A disabled frontend is the fleet's state: every master stops listening on its binds (new
   connections are refused, as HAProxy's paused listeners refuse them) and every worker stops
   accepting on them, while established connections are served on; ``show stat`` says
   ``PAUSED``. "Already disabled/enabled" is the fleet's state too, not one host's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from geoproxy.balance.view import AdminState
from geoproxy.config.model import BalanceAlgorithm, HashType
from geoproxy.state.store import ServerReport

from .context import CommandError, Context, Level

_REQUIRE_TARGET = "Require 'backend/server'."
_STATE_WORDS = {"ready": AdminState.READY, "drain": AdminState.DRAIN, "maint": AdminState.MAINT}
_HASHING = (BalanceAlgorithm.SOURCE, BalanceAlgorithm.URI, BalanceAlgorithm.URL_PARAM,
            BalanceAlgorithm.HDR)
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")
_SET_SERVER_USAGE = ("usage: set server <backend>/<server> addr | agent | agent-addr | "
                     "agent-port | agent-send | check-addr | check-port | fqdn | health | ssl | "
                     "state | weight")

def find_server(ctx: Context, target: str) -> tuple[str, ServerReport]:
    """The backend's name and the server that ``B/S`` names, or HAProxy's error."""
    backend_name, slash, server_name = target.partition("/")
    if not slash:
        raise CommandError(_REQUIRE_TARGET)
    report = ctx.control.fleet_report()
    backend = next((b for b in report.backends if b.name == backend_name), None)
    if backend is None:
        raise CommandError("No such backend.")
    server = next((s for s in backend.servers if s.name == server_name), None)
    if server is None:
        raise CommandError("No such server.")
    return backend.name, server

def _strtol(text: str) -> tuple[int | None, str]:
    """C's strtol: the leading integer (None: none) and what follows it."""
    match = _LEADING_INT.match(text)
    if match is None:
        return None, text
    return int(match.group(1)), text[match.end():]

def _is_static(ctx: Context, backend: str) -> bool:
    config = ctx.config().backend(backend)
    if config is None:
        return False
    algorithm = config.balance.algorithm
    return algorithm is BalanceAlgorithm.STATIC_RR or (
        algorithm in _HASHING and config.hash.method is HashType.MAP_BASED
    )

def parse_weight(ctx: Context, backend: str, server: ServerReport, text: str) -> int:
    """HAProxy's ``server_parse_weight_change_request``."""
    if not text:
        raise CommandError("Require <weight> or <weight%>.")
    weight, rest = _strtol(text)
    if weight is None:
        raise CommandError("Empty weight string empty or preceded by garbage", newline=False)
    if rest == "%":
        if weight < 0:
            raise CommandError("Relative weight must be positive.")
        weight = min(server.cfg_weight * min(weight, 25600) // 100, 256)
    elif weight < 0 or weight > 256:
        raise CommandError("Absolute weight can only be between 0 and 256 inclusive.")
    elif rest:
        raise CommandError("Trailing garbage in weight string", newline=False)
    if weight and weight != server.cfg_weight and _is_static(ctx, backend):
        raise CommandError("Backend is using a static LB algorithm and only accepts weights "
                           "'0%' and '100%'.")
    return weight

def set_server(ctx: Context, args: Sequence[str]) -> str:
    """``set server B/S FIELD VALUE``."""
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    field, value = (args[1] if len(args) > 1 else ""), (args[2] if len(args) > 2 else "")
    control = ctx.control
    if field == "state":
        state = _STATE_WORDS.get(value)
        if state is None:
            raise CommandError("'set server <srv> state' expects 'ready', 'drain' and 'maint'.")
        control.set_admin(backend, server.name, state)
    elif field == "weight":
        control.set_weight(backend, server.name, parse_weight(ctx, backend, server, value))
    elif field == "health":
        if value not in ("up", "stopping", "down"):
            raise CommandError("'set server <srv> health' expects 'up', 'stopping', or 'down'.")
        control.set_health(backend, server.name, value)
    elif field in ("agent", "agent-send"):
        raise CommandError("agent checks are not enabled on this server.")
    elif field in ("agent-addr", "agent-port"):
        raise CommandError("agent checks are not enabled on this server", newline=False)
    elif field == "addr":
        raise CommandError("no need to change the addr by 'stats socket command'"
                           if value == server.address.rpartition(":")[0] else
                           "geoproxy does not change a server's address at run time: edit the "
                           "configuration and reload (SIGHUP).")
    elif field in ("check-addr", "check-port", "fqdn", "ssl"):
        raise CommandError(f"'set server <srv> {field}' is not supported by geoproxy: edit the "
                           "configuration and reload (SIGHUP).")
    else:
        raise CommandError(_SET_SERVER_USAGE)
    return ""

def get_weight(ctx: Context, args: Sequence[str]) -> str:
    _, server = find_server(ctx, args[0] if args else "")
    return f"{server.weight} (initial {server.cfg_weight})\n"

def set_weight(ctx: Context, args: Sequence[str]) -> str:
    """``set weight B/S W`` (deprecated in HAProxy, used by Ansible)."""
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    weight = parse_weight(ctx, backend, server, args[1] if len(args) > 1 else "")
    ctx.control.set_weight(backend, server.name, weight)
    return ""

def disable_server(ctx: Context, args: Sequence[str]) -> str:
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    ctx.control.set_admin(backend, server.name, AdminState.MAINT)
    return ""

def enable_server(ctx: Context, args: Sequence[str]) -> str:
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    ctx.control.set_admin(backend, server.name, AdminState.READY)
    return ""

def set_maxconn_server(ctx: Context, args: Sequence[str]) -> str:
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    text = args[1] if len(args) > 1 else ""
    if not text:
        raise CommandError("Require <maxconn>.")
    value, rest = _strtol(text)
    if value is None or rest:
        raise CommandError("maxconn string empty or preceded by garbage", newline=False)
    ctx.control.set_maxconn(backend, server.name, max(value, 0))
    return ""

def shutdown_sessions(ctx: Context, args: Sequence[str]) -> str:
    ctx.require(Level.ADMIN)
    backend, server = find_server(ctx, args[0] if args else "")
    ctx.control.shutdown_sessions(backend, server.name)
    return ""

def _frontend(ctx: Context, args: Sequence[str]) -> str:
    """The frontend ``args`` name (a ``listen`` section is one too), or HAProxy's error."""
    ctx.require(Level.ADMIN)
    name = args[0] if args else ""
    if not name:
        raise CommandError("A frontend name is expected.")
    if ctx.config().frontend(name) is None:
        raise CommandError("No such frontend.")
    return name


def disable_frontend(ctx: Context, args: Sequence[str]) -> str:
    """``disable frontend F``: no host of the fleet accepts new connections on F's binds
    (rule 4)."""
    if not ctx.control.disable_frontend(_frontend(ctx, args)):
        raise CommandError("All sockets are already disabled.")
    return ""


def enable_frontend(ctx: Context, args: Sequence[str]) -> str:
    """``enable frontend F``: every host accepts on F's binds again."""
    if not ctx.control.enable_frontend(_frontend(ctx, args)):
        raise CommandError("All sockets are already enabled.")
    return ""
