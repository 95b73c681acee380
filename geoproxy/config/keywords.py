"""The proxy keyword table: keyword -> parser and the sections it belongs to.

This is HAProxy's keyword matrix (manual section 4.1) restricted to what geoproxy implements.
A keyword used on the wrong side of a proxy is ignored with HAProxy's warning ("'balance'
ignored because frontend 'web' has no backend capability"), except the ``strict`` ones, which
are errors as in HAProxy. Built once, at import.
"""

from __future__ import annotations

from geoproxy.config.context import Keyword
from geoproxy.config.draft import ProxyDraft
from geoproxy.config.kw_backend import (
    parse_balance,
    parse_dynamic_cookie_key,
    parse_hash_type,
    parse_stick,
)
from geoproxy.config.kw_check import parse_http_check
from geoproxy.config.kw_compression import parse_compression
from geoproxy.config.kw_cookie import parse_cookie
from geoproxy.config.kw_external_check import parse_external_check
from geoproxy.config.kw_http_errors import parse_errorfiles
from geoproxy.config.kw_http_reuse import parse_http_reuse
from geoproxy.config.kw_log import parse_log
from geoproxy.config.kw_monitor import parse_monitor, parse_monitor_uri
from geoproxy.config.kw_option import parse_option
from geoproxy.config.kw_proxy import (
    parse_acl,
    parse_bind,
    parse_default_backend,
    parse_errorfile,
    parse_maxconn,
    parse_mode,
    parse_persist_rule,
    parse_retries,
    parse_timeout,
    parse_timeout_alias,
)
from geoproxy.config.kw_rules import (
    parse_capture,
    parse_declare,
    parse_http_rule,
    parse_log_format,
    parse_redirect_keyword,
    parse_use_backend,
)
from geoproxy.config.kw_server import parse_default_server, parse_server, parse_server_template
from geoproxy.config.kw_stats import parse_stats
from geoproxy.config.kw_stick_table import parse_stick_table
from geoproxy.config.kw_tcp_check import parse_tcp_check
from geoproxy.config.kw_tcp_request import parse_tcp_request
from geoproxy.config.kw_unique_id import parse_unique_id_format, parse_unique_id_header

ProxyKeyword = Keyword[ProxyDraft]


PROXY_KEYWORDS: dict[str, ProxyKeyword] = {
    "mode": Keyword(parse_mode),
    "bind": Keyword(parse_bind, in_defaults=False, backend=False),
    "default_backend": Keyword(parse_default_backend, backend=False),
    "use_backend": Keyword(parse_use_backend, in_defaults=False, backend=False),
    "maxconn": Keyword(parse_maxconn, backend=False),
    "acl": Keyword(parse_acl),
    "timeout": Keyword(parse_timeout),
    "contimeout": Keyword(parse_timeout_alias),
    "clitimeout": Keyword(parse_timeout_alias),
    "srvtimeout": Keyword(parse_timeout_alias),
    "errorfile": Keyword(parse_errorfile),
    "errorfiles": Keyword(parse_errorfiles),
    "option": Keyword(parse_option),
    "retries": Keyword(parse_retries, frontend=False),
    "balance": Keyword(parse_balance, frontend=False),
    "hash-type": Keyword(parse_hash_type, frontend=False),
    "cookie": Keyword(parse_cookie, frontend=False),
    "dynamic-cookie-key": Keyword(parse_dynamic_cookie_key, frontend=False),
    "http-check": Keyword(parse_http_check, frontend=False),
    "default-server": Keyword(parse_default_server, frontend=False, strict=True),
    "server": Keyword(parse_server, in_defaults=False, frontend=False, strict=True),
    "server-template": Keyword(parse_server_template, in_defaults=False, frontend=False,
                               strict=True),
    "stick-table": Keyword(parse_stick_table, in_defaults=False, strict=True),
    "stick": Keyword(parse_stick, in_defaults=False, frontend=False),
    "force-persist": Keyword(parse_persist_rule, in_defaults=False, frontend=False),
    "ignore-persist": Keyword(parse_persist_rule, in_defaults=False, frontend=False),
    "stats": Keyword(parse_stats),
    "log": Keyword(parse_log, backend=False),
    "tcp-request": Keyword(parse_tcp_request),
    "tcp-check": Keyword(parse_tcp_check, frontend=False),
    "external-check": Keyword(parse_external_check, frontend=False),
    "monitor-uri": Keyword(parse_monitor_uri, backend=False),
    "monitor": Keyword(parse_monitor, backend=False),
    "compression": Keyword(parse_compression),
    "unique-id-format": Keyword(parse_unique_id_format, backend=False),
    "unique-id-header": Keyword(parse_unique_id_header, backend=False),
    "http-reuse": Keyword(parse_http_reuse, frontend=False),
    "http-request": Keyword(parse_http_rule),
    "http-response": Keyword(parse_http_rule),
    "http-after-response": Keyword(parse_http_rule),
    "redirect": Keyword(parse_redirect_keyword),
    "capture": Keyword(parse_capture, in_defaults=False, backend=False),
    "declare": Keyword(parse_declare, in_defaults=False, backend=False),
    "log-format": Keyword(parse_log_format, backend=False),
}

# the keywords a `no` or `default` prefix may precede
PREFIXABLE = frozenset({"option", "log"})
