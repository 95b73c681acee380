"""Section drafts -> the TCP values of a ``Frontend`` or ``Backend`` (``model_tcp``).

Rules:
1. ``tcp-request connection`` rules belong to the frontend half of a section, ``tcp-request
   content`` rules and ``inspect-delay`` to both halves (a ``listen`` runs its content rules
   once, in its frontend half, as HAProxy does for a proxy that is both).
2. The check ruleset is the last ``option`` that named a check: a protocol check's fixed
   steps, or, for ``option tcp-check``, the section's own ``tcp-check`` lines (else its
   defaults').
"""

from __future__ import annotations

from geoproxy.config.acl import PREDEFINED
from geoproxy.config.draft import (
    ProxyDraft,
    ProxyKind,
    Settings,
    TcpRequestRuleDraft,
    bind_condition,
)
from geoproxy.config.model import Acl
from geoproxy.config.model_tcp import (
    CheckProtocol,
    TcpCheck,
    TcpRequestRule,
    TcpRequestRules,
)


def _rules(drafts: list[TcpRequestRuleDraft], acls: dict[str, Acl]) -> tuple[TcpRequestRule, ...]:
    return tuple(
        TcpRequestRule(
            rule.action,
            rule.location,
            bind_condition(rule.condition, acls, PREDEFINED) if rule.condition else None,
        )
        for rule in drafts
    )


def tcp_request_rules(
    draft: ProxyDraft, acls: dict[str, Acl], *, frontend: bool
) -> TcpRequestRules | None:
    """The ``tcp-request`` rules of one half of ``draft`` (rule 1); None when it has none."""
    rules = draft.rules
    connection = _rules(rules.tcp_connection, acls) if frontend else ()
    if frontend or draft.kind is not ProxyKind.LISTEN:
        content = _rules(rules.tcp_content, acls)
        delay = rules.inspect_delay
    else:
        content, delay = (), None
    if not connection and not content and delay is None:
        return None
    return TcpRequestRules(connection, content, delay)


def tcp_check(settings: Settings) -> TcpCheck | None:
    """The check ruleset a backend runs (rule 2), or None (plain connect or HTTP checks)."""
    protocol = settings.check_protocol
    if protocol is None or settings.check_location is None:
        return None
    if protocol is CheckProtocol.TCP_CHECK:
        steps = tuple(settings.tcp_checks)
    else:
        steps = settings.check_steps
    return TcpCheck(protocol, steps, settings.check_location)
