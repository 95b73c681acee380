"""``unique-id-format FORMAT`` and ``unique-id-header NAME``: an identifier built for each
request from a log-format string, sent to the server in a header (HAProxy's manual).

Rules:
1. Both belong to frontends and ``defaults`` (inherited). The format is one argument: spaces
   in it must be escaped or quoted, as HAProxy requires.
2. ``unique-id-header`` without ``unique-id-format`` adds nothing, as in HAProxy (it warns).
3. The format is checked at load time (``unique_id_format``): what geoproxy cannot evaluate
   is refused by name.
"""

from __future__ import annotations

from geoproxy.config.context import Line
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.unique_id_format import FormatError, parse_format


def parse_unique_id_format(proxy: ProxyDraft, line: Line) -> None:
    if not line.args:
        line.fail("'unique-id-format' expects an argument.")
    if len(line.args) > 1:
        line.fail("'unique-id-format' expects only one argument, don't forget to escape "
                  "spaces!")
    try:
        parse_format(line.arg(0))
    except FormatError as exc:
        line.fail(f"'unique-id-format' : {exc}.")
    proxy.settings.unique_id_format = line.arg(0)
    proxy.settings.unique_id_location = line.location


def parse_unique_id_header(proxy: ProxyDraft, line: Line) -> None:
    if not line.args:
        line.fail("'unique-id-header' expects an argument.")
    line.at_most(1)
    proxy.settings.unique_id_header = line.arg(0)
