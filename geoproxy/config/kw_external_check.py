"""External health checks: ``option external-check``, ``external-check command <command>``,
``external-check path <path>`` (and the global ``external-check`` that allows them).

Rules (manual 4.2 ``option external-check``, ``external-check command|path``; HAProxy 2.6):
1. ``option external-check`` takes no argument and replaces any other check option, as the
   last ``option`` naming a check wins (``option httpchk``, ``tcp-check``, ``redis-check``...).
2. ``external-check command|path`` need their one argument; any other word after
   ``external-check`` is an error with HAProxy's words. They are inherited from ``defaults``.
3. A backend with ``option external-check`` needs the global ``external-check`` and a
   command: both are errors naming the option's line (``missing_parts``), as HAProxy refuses
   to start without them.
"""

from __future__ import annotations

from collections.abc import Iterator

from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.model import Diagnostic


def option_external_check(proxy: ProxyDraft, line: Line) -> None:
    line.at_most(1, "option external-check")
    settings = proxy.settings
    settings.httpchk = False
    settings.check_protocol = None
    settings.external_check = line.location


def parse_external_check(proxy: ProxyDraft, line: Line) -> None:
    what = line.arg(0)
    if what not in ("command", "path"):
        line.fail("'external-check' only supports 'command' and 'path'. but got "
                  f"'{what}'.")
    value = line.arg(1)
    if not value:
        line.fail(f"missing argument after '{what}'.")
    line.at_most(2)
    if what == "command":
        proxy.settings.external_command = value
    else:
        proxy.settings.external_path = value


def missing_parts(drafts: list[ProxyDraft], global_allowed: bool) -> Iterator[Diagnostic]:
    """Rule 3: HAProxy's messages, at the ``option external-check`` line."""
    for draft in drafts:
        location = draft.settings.external_check
        if not draft.kind.has_backend or location is None or not draft.name:
            continue
        if not global_allowed:
            yield Diagnostic(location, "option", (
                f"Proxy '{draft.name}' : 'option external-check' unable to find required "
                "'global.external-check'."))
        if draft.settings.external_command is None:
            yield Diagnostic(location, "option", (
                f"Proxy '{draft.name}' : 'option external-check' unable to find required "
                "'external-check command'."))
