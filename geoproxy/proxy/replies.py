"""The rules' part of one request in the proxy app: which rule lists run when, and how a
rule's answer becomes a response (``geoproxy.rules.engine`` rule 2).

Rules:
1. A rule's answer (``LocalReply``) is sent like geoproxy's own error pages: a ``deny`` or
   ``auth`` page is the proxy's errorfile for its status when it has one (the backend's once
   one is chosen, else the frontend's), else HAProxy's built-in page, with the rule's headers
   added; ``return`` and ``redirect`` answers are sent as built.
2. Every response, the server's and geoproxy's own, goes through the ``http-after-response``
   rules (backend first, then frontend) just before its head is written.
"""

from __future__ import annotations

from geoproxy.proxy.errorpages import ErrorPage, parse_errorfile
from geoproxy.proxy.runtime import BackendRuntime, FrontendRuntime
from geoproxy.rules.engine import run_rules
from geoproxy.rules.run import LocalReply
from geoproxy.rules.txn import Txn


def reply_page(reply: LocalReply, frontend: FrontendRuntime,
               backend: BackendRuntime | None) -> ErrorPage:
    """The response of a rule's answer (rule 1)."""
    if reply.raw is not None:
        return parse_errorfile(reply.raw)
    if reply.error_page:
        page = (backend.errors.get(reply.status) if backend is not None else None) \
            or frontend.errors.rule_page(reply.status)
        if not reply.headers:
            return page
        return ErrorPage(page.status, page.headers + tuple(reply.headers), page.body,
                         page.close)
    status = f"{reply.status} {reply.reason}"
    return ErrorPage(status, tuple(reply.headers), reply.body, close=False)


def after_response(txn: Txn | None, frontend: FrontendRuntime,
                   backend: BackendRuntime | None, status: str,
                   headers: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """The status line and headers once the ``http-after-response`` rules ran (rule 2)."""
    lists = []
    if backend is not None and backend.rules is not None and backend.rules.after_response \
            and frontend.runs_backend_rules(backend):
        lists.append(backend.rules.after_response)
    if frontend.rules is not None and frontend.rules.after_response:
        lists.append(frontend.rules.after_response)
    if not lists or txn is None:
        return status, headers
    code, _, reason = status.partition(" ")
    txn.enter_response(int(code), reason, headers)
    for rules in lists:
        run_rules(rules, txn)
    return f"{txn.status} {txn.reason}", txn.headers


def response_rules(txn: Txn, frontend: FrontendRuntime, backend: BackendRuntime, status: int,
                   reason: str, headers: list[tuple[str, str]]) -> LocalReply | None:
    """The ``http-response`` rules on the server's answer: the backend's, then the
    frontend's (one pass for a ``listen``). The answer of a rule that replaces the response,
    else None (``txn`` then holds the status and headers to send)."""
    txn.enter_response(status, reason, headers)
    if frontend.rules is not None:
        frontend.rules.capture_response(txn)
    if backend.rules is not None and backend.rules.response and \
            frontend.runs_backend_rules(backend):
        reply = run_rules(backend.rules.response, txn)
        if reply is not None:
            return reply
    if frontend.rules is not None and frontend.rules.response:
        return run_rules(frontend.rules.response, txn)
    return None


def has_after_rules(frontend: FrontendRuntime, backend: BackendRuntime | None) -> bool:
    if frontend.rules is not None and frontend.rules.after_response:
        return True
    return backend is not None and backend.rules is not None and \
        bool(backend.rules.after_response)
