"""Load the golden cookie tables recorded from haproxy 2.6 (``scripts/haproxy_cookie_golden.py``)
and replay each exchange through geoproxy's persistence functions.

Each table holds a ``cookie`` line, the servers (``bal`` first: the backend balanced with
``balance first``, so a request answered by ``bal`` was not sent by persistence), and cases of
one or more exchanges on one keep-alive connection. For each exchange the table records what
the server received (its Cookie headers), what the client received (Set-Cookie and
Cache-Control headers), which server answered, and the cookie letters of the log. An exchange
whose ``geoproxy_differs`` is set is one where geoproxy deliberately does something else; the
entry says why and what geoproxy does instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoproxy.balance.view import AdminState, OperState, ServerView
from geoproxy.config.model import CookieMode, CookiePolicy, Location
from geoproxy.persistence.cookies import read_request, rewrite_response
from geoproxy.persistence.dynamic import dynamic_cookie
from geoproxy.persistence.result import KEEP, PersistenceRequest

CASES = Path(__file__).parent / "cases" / "cookies"
BALANCED = "bal"


@dataclass(frozen=True)
class Exchange:
    suite: dict[str, Any]
    case: dict[str, Any]
    step: int

    @property
    def data(self) -> dict[str, Any]:
        return self.case["exchanges"][self.step]  # type: ignore[no-any-return]

    @property
    def id(self) -> str:
        suffix = f" #{self.step + 1}" if len(self.case["exchanges"]) > 1 else ""
        return f"{self.suite['name']}: {self.case['name']}{suffix}"


def load(*names: str) -> list[Exchange]:
    out = []
    for name in names:
        suite = json.loads((CASES / f"{name}.json").read_text())
        for case in suite["cases"]:
            out += [Exchange(suite, case, step) for step in range(len(case["exchanges"]))]
    return out


def policy_of(suite: dict[str, Any]) -> CookiePolicy:
    raw = dict(suite["policy"])
    return CookiePolicy(
        name=raw.pop("name"),
        mode=CookieMode(raw.pop("mode")),
        location=Location("golden", 1),
        domains=tuple(raw.pop("domains", ())),
        attrs=tuple(raw.pop("attrs", ())),
        **raw,
    )


def servers_of(suite: dict[str, Any]) -> list[ServerView]:
    out = []
    for index, raw in enumerate(suite["servers"]):
        cookie = raw.get("cookie")
        if cookie is None and suite.get("dynamic_cookie_key"):
            host, port = raw["address"].rsplit(":", 1)
            cookie = dynamic_cookie(suite["dynamic_cookie_key"], host, int(port))
        state = raw.get("state", "up")
        out.append(ServerView(
            name=raw["name"], index=index, weight=0 if state == "drain" else 1,
            backup=raw.get("backup", False),
            admin={"drain": AdminState.DRAIN, "maint": AdminState.MAINT}.get(
                state, AdminState.READY),
            oper=OperState.DOWN if state == "down" else OperState.UP,
            cookie=cookie,
        ))
    return out


def request_of(exchange: Exchange) -> PersistenceRequest:
    data = exchange.data
    cookies = [v for k, v in data["request_headers"] if k.lower() == "cookie"]
    return PersistenceRequest(
        method=data["method"],
        cookie="; ".join(cookies) if cookies else None,
        target=data["target"],
        persist=exchange.suite["persist"],
        force_persist=data["force_persist"],
        ignore_persist=data["ignore_persist"],
    )


def replay(exchange: Exchange) -> dict[str, Any]:
    """What geoproxy does with the exchange, in the shape of the recorded result."""
    policy = policy_of(exchange.suite)
    servers = servers_of(exchange.suite)
    request = request_of(exchange)
    data = exchange.data
    now = data["result"]["now"]
    decision = read_request(policy, servers, request, now)
    upstream = request.cookie if decision.upstream_cookie is KEEP else decision.upstream_cookie
    expected = expectation(exchange)
    answered = next(s for s in servers if s.name == expected["answered_by"])
    response = data["response"]
    headers = [(k, v.strip(" \t")) for k, v in response["headers"]]
    rewritten = rewrite_response(decision, answered, response["status"], headers, now)
    return {
        "direct": decision.server.name if decision.server else None,
        "upstream_cookie": upstream,
        "request_log": decision.status.value,
        "client_headers": [
            [k.lower(), v] for k, v in rewritten.headers
            if k.lower() in ("set-cookie", "cache-control")
        ],
        "response_log": rewritten.status.value,
    }


def expectation(exchange: Exchange) -> dict[str, Any]:
    """What haproxy 2.6 did, in the shape of ``replay``, with geoproxy's documented
    differences applied."""
    result = exchange.data["result"]
    answered = result["answered_by"]
    upstream = result["upstream_cookie"]
    expected = {
        "answered_by": answered,
        "direct": None if answered == BALANCED else answered,
        "upstream_cookie": "; ".join(upstream) if upstream else None,
        "request_log": result["log"][2],
        "client_headers": [[k.lower(), v] for k, v in result["client_headers"]],
        "response_log": result["log"][3],
    }
    differs = exchange.data.get("geoproxy_differs")
    if differs:
        expected.update({k: v for k, v in differs.items() if k != "why"})
        expected["direct"] = (
            None if expected["answered_by"] == BALANCED else expected["answered_by"]
        )
    return expected
