"""HTTP rules, differential: the same configuration and requests through haproxy 2.6 and
through geoproxy give the same status line, Location, response headers, body (for answers the
proxy makes itself) and request seen by the backend (method, target, headers).

One configuration holds every case: one frontend per concern, each rule scoped to a path
(``if { path_beg /ID/ }``), so that one haproxy, one geoproxy and one echo backend
(``tests.support.echo_backend``) serve the whole module. ACL rows also state the expected
truth, so that a row where both proxies are wrong together still fails. Rows where geoproxy
differs on purpose are not here; the README's differences list names them.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import Stack
from tests.support.ports import free_ports, wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.raw_client import RawConnection, RawResponse
from tests.support.tools import tool_missing

pytestmark = pytest.mark.e2e
HAPROXY = shutil.which("haproxy")
HOST = "127.0.0.1"
BASIC_BOB = "Basic Ym9iOnNlY3JldA=="  # bob:secret
BASIC_EVE = "Basic ZXZlOmh1bnRlcjI="  # eve:hunter2 (SHA-512 crypt hash in the userlist)
BASIC_BAD = "Basic Ym9iOndyb25n"  # bob:wrong
SHA512_HUNTER2 = (
    "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJ"
    "oCT6dfnj."
)

# -- fetches: `set-header X-Fetch %[EXPR]` on /fetch/ID/ (request side) --------------------
FETCHES: list[tuple[str, str, str, dict[str, str]]] = [
    # (id, expression, path after /fetch/ID, request headers)
    ("path", "path", "/a/b?q=1", {}),
    ("url", "url", "/a?b=c", {}),
    ("query", "query", "/x?a=1&b=2", {}),
    ("query-none", "query", "/x", {}),
    ("base", "base", "/p?q", {}),
    ("method", "method", "/", {}),
    ("hdr", "req.hdr(x-in)", "/", {"X-In": "a, b, c"}),
    ("hdr-occ", "hdr(x-in,1)", "/", {"X-In": "a, b, c"}),
    ("hdr-neg", "hdr(x-in,-2)", "/", {"X-In": "a, b, c"}),
    ("hdr-cnt", "req.hdr_cnt(x-in)", "/", {"X-In": "a, b, c"}),
    ("hdr-val", "req.hdr_val(x-n)", "/", {"X-N": "42"}),
    ("hdr-absent", "req.hdr(x-none)", "/", {}),
    ("fhdr", "req.fhdr(user-agent)", "/", {"User-Agent": "Mozilla/5.0 (X11, Linux)"}),
    ("cook", "req.cook(sid)", "/", {"Cookie": "a=1; sid=abc; b=2"}),
    ("cook-cnt", "req.cook_cnt(a)", "/", {"Cookie": "a=1; a=2; b=3"}),
    ("cook-val", "req.cook_val(n)", "/", {"Cookie": "n=17"}),
    ("url-param", "url_param(id)", "/x?id=7&y=2", {}),
    ("urlp-delim", "urlp(b,;)", "/x;a=1;b=2", {}),
    ("src", "src", "/", {}),
    ("fe-name", "fe_name", "/", {}),
    ("ssl-fc", "ssl_fc", "/", {}),
    ("req-ver", "req.ver", "/", {}),
    ("capture-uri", "capture.req.uri", "/c?x=1", {}),
    ("capture-method", "capture.req.method", "/", {}),
    ("int", "int(12),add(30)", "/", {}),
    ("str", "str(hello),upper", "/", {}),
    ("bool", "bool(1)", "/", {}),
    ("nbsrv", "nbsrv(echo)", "/", {}),
    ("auth-user", "http_auth_user", "/", {"Authorization": BASIC_BOB}),
    ("auth-type", "http_auth_type", "/", {"Authorization": BASIC_BOB}),
]

# -- converters: `set-header X-Conv %[req.hdr(x-in),CONVERTER]` on /conv/ID/ ------------------
CONVERTERS: list[tuple[str, str, str]] = [
    # (id, converter chain, input)
    ("lower", "lower", "MiXeD"),
    ("upper", "upper", "MiXeD"),
    ("word", "word(2,.)", "a..b.c"),
    ("word-neg", "word(-1,.)", "a.b.c"),
    ("word-count", "word(1,.,2)", "a.b.c"),
    ("field", "field(2,.)", "a..b.c"),
    ("field-count", "field(2,.,0)", "a.b.c.d"),
    ("regsub", "regsub(o,0)", "foo boo"),
    ("regsub-g", "regsub(o,0,g)", "foo boo"),
    ("length", "length", "hello"),
    ("base64", "base64", "hello"),
    ("hex", "hex", "AB"),
    ("url-dec", "url_dec", "a%20b%2Fc"),
    ("iif", "bool,iif(yes,no)", "0"),
    ("add", "add(3)", "4"),
    ("mul-div", "mul(6),div(4)", "7"),
    ("mod", "mod(5)", "17"),
    ("concat", "concat(<,txn.tag,>)", "mid"),
    ("ltrim", "ltrim(x)", "xxabcxx"),
    ("rtrim", "rtrim(x)", "xxabcxx"),
    ("bytes", "bytes(1,3)", "abcdef"),
    ("sdbm", "sdbm", "key"),
    ("djb2", "djb2", "key"),
    ("wt6", "wt6", "key"),
    ("crc32", "crc32", "key"),
    ("sha1", "sha1,hex", "abc"),
    ("http-date", "http_date", "1700000000"),
    ("json", "json", 'a"b'),
    ("host-only", "host_only", "example.com:8080"),
    ("port-only", "port_only", "example.com:8080"),
    ("ub64enc", "ub64enc", "a?b>"),
    ("strcmp", "strcmp(txn.tag)", "s"),
    ("map", "map(@MAP@,unknown)", "www.example.com"),
    ("map-miss", "map(@MAP@,unknown)", "other.example.com"),
    ("map-beg", "map_beg(@MAPBEG@)", "/api/v1/users"),
    ("map-reg", "map_reg(@MAPREG@,none)", "/img/logo.png"),
    ("map-int", "map_int(@MAPINT@)", "5"),
    ("map-str-int", "map_str_int(@MAPNUM@,-1)", "y"),
    ("map-str-int-miss", "map_str_int(@MAPNUM@,-1)", "z"),
]
MAP_FILES = {
    "MAP": "# host -> backend\nwww.example.com   site\napi.example.com   api\n",
    "MAPBEG": "/api/v1  one\n/api     any\n",
    "MAPREG": "\\.(png|jpg)$  image\n\\.css$  style\n",
    "MAPINT": "5 five\n10 ten\n",
    "MAPNUM": "x 7\ny 8\n",
    "PATTERNS": "# paths\n/static\n  /assets  \n",
    "BODY": "static body\n",
    "LFBODY": "path=%[path] host=%[req.hdr(host)]\n",
    "E429": "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nX-Page: own\r\n"
            "\r\nslow down\n",
    "RAW": "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot here\n",
}

# -- ACLs: `set-header X-Acl 1 if { path_beg /acl/ID/ } { ACL }`, expected truth ------------
ACLS: list[tuple[str, str, str, dict[str, str], bool]] = [
    # (id, acl, path after /acl/ID, headers, expected)
    ("path-str", "path -m str /acl/path-str/x", "/x", {}, True),
    ("path-beg", "path_beg /acl/path-beg/a", "/abc", {}, True),
    ("path-end", "path_end .css", "/s.css", {}, True),
    ("path-end-i", "path_end -i .CSS", "/s.css", {}, True),
    ("path-sub", "path_sub /needle/", "/x/needle/y", {}, True),
    ("path-reg", "path_reg ^/acl/path-reg/[0-9]+$", "/123", {}, True),
    ("path-reg-no", "path_reg ^/acl/path-reg-no/[0-9]+$", "/12a", {}, False),
    ("path-dir", "path_dir api", "/api/x", {}, True),
    ("path-dir-no", "path_dir api", "/apis/x", {}, False),
    ("path-len", "path_len gt 20", "/long/enough", {}, True),
    ("url-beg", "url_beg /acl/url-beg/?", "/?x", {}, True),
    ("url-sub", "url_sub x=1", "/p?x=1", {}, True),
    ("base-beg", "base_beg example.com/acl", "/", {}, True),
    ("hdr-str", "hdr(x-in) b", "/", {"X-In": "a, b"}, True),
    ("hdr-str-i", "hdr(x-in) -i B", "/", {"X-In": "a, b"}, True),
    ("hdr-beg", "hdr_beg(host) exa", "/", {}, True),
    ("hdr-end", "hdr_end(host) .com", "/", {}, True),
    ("hdr-dom", "hdr_dom(host) example", "/", {}, True),
    ("hdr-dom-no", "hdr_dom(host) exam", "/", {}, False),
    ("hdr-reg", "hdr_reg(x-in) ^[ab]$", "/", {"X-In": "z, b"}, True),
    ("hdr-found", "req.hdr(x-in) -m found", "/", {"X-In": "1"}, True),
    ("hdr-found-no", "req.hdr(x-in) -m found", "/", {}, False),
    ("hdr-len", "hdr(x-in) -m len 3", "/", {"X-In": "abc"}, True),
    ("hdr-cnt", "hdr_cnt(x-in) ge 2", "/", {"X-In": "a, b"}, True),
    ("hdr-val", "hdr_val(x-n) 10:20", "/", {"X-N": "15"}, True),
    ("hdr-int-lt", "req.hdr(x-n) -m int lt 10", "/", {"X-N": "15"}, False),
    ("hdr-ip", "req.hdr(x-ip) -m ip 10.0.0.0/8", "/", {"X-Ip": "10.1.2.3"}, True),
    ("hdr-conv", "req.hdr(host),lower -m str example.com", "/", {"Host": "EXAMPLE.com"}, True),
    ("cook", "req.cook(sid) abc", "/", {"Cookie": "sid=abc"}, True),
    ("cook-beg", "cook_beg(sid) ab", "/", {"Cookie": "sid=abc"}, True),
    ("cook-found-no", "req.cook(sid) -m found", "/", {"Cookie": "other=1"}, False),
    ("urlp", "urlp(id) 7", "/?id=7", {}, True),
    ("urlp-val", "urlp_val(id) gt 5", "/?id=7", {}, True),
    ("method", "method POST", "/", {}, False),
    ("meth-get", "METH_GET", "/", {}, True),
    ("src", "src 127.0.0.0/8", "/", {}, True),
    ("src-mask", "src 127.0.0.0/255.0.0.0", "/", {}, True),
    ("localhost", "LOCALHOST", "/", {}, True),
    ("ssl-fc", "ssl_fc", "/", {}, False),
    ("not-ssl-fc", "!{ ssl_fc }", "/", {}, True),
    ("http-1.1", "HTTP_1.1", "/", {}, True),
    ("dst-port", "dst_port 1:65535", "/", {}, True),
    ("var", "var(txn.tag) -m str t", "/", {}, True),
    ("var-bool", "var(txn.tag) -m bool", "/", {}, False),
    ("always", "always_true", "/", {}, True),
    ("file", "path_beg -f @PATTERNS@", "/x", {}, False),
    ("map-keys", "hdr(host) -M -f @MAP@", "/", {"Host": "api.example.com"}, True),
    ("nbsrv", "nbsrv(echo) ge 1", "/", {}, True),
    ("auth-ok", "http_auth(users)", "/", {"Authorization": BASIC_BOB}, True),
    ("auth-crypt", "http_auth(users)", "/", {"Authorization": BASIC_EVE}, True),
    ("auth-bad", "http_auth(users)", "/", {"Authorization": BASIC_BAD}, False),
    ("auth-group", "http_auth_group(users) admins", "/", {"Authorization": BASIC_BOB}, True),
    ("auth-group-no", "http_auth_group(users) admins", "/", {"Authorization": BASIC_EVE}, False),
]

REQUEST_RULES = r"""
    http-request capture req.hdr(x-cap) len 5
    http-request set-var(txn.tag) str(t)
    http-request set-header X-Set constant if { path_beg /set-header/ }
    http-request set-header X-Fmt "<%[req.hdr(host)]> %[method] %ci %HM %HU %HP %HQ %HV %f %b %ST" if { path_beg /set-fmt/ }
    http-request set-header X-Empty "[%[req.hdr(x-none)]]" if { path_beg /set-fmt/ }
    http-request set-header X-Quoted "%{+Q}r %{+Q}[path] %{+Q}ci %{+Q}ST" if { path_beg /set-fmt/ }
    http-request set-header X-Spaces "a  b   c" if { path_beg /set-fmt/ }
    http-request set-header Host rewritten.example if { path_beg /set-host/ }
    http-request add-header X-Add one if { path_beg /add-header/ }
    http-request add-header X-Add two if { path_beg /add-header/ }
    http-request del-header X-Del if { path_beg /del-header/ }
    http-request del-header X-Pre -m beg if { path_beg /del-beg/ }
    http-request replace-header X-Rep ^(\w+)-(\w+)$ \2-\1 if { path_beg /replace-header/ }
    http-request replace-value X-Val ^a(.*)$ b\1 if { path_beg /replace-value/ }
    http-request set-path /rewritten%[path] if { path_beg /set-path/ }
    http-request set-query x=1&%[query] if { path_beg /set-query/ }
    http-request set-uri /uri?z=9 if { path_beg /set-uri/ }
    http-request set-method PUT if { path_beg /set-method/ }
    http-request replace-path /strip(/.*)? /kept\1 if { path_beg /strip }
    http-request set-var(txn.who) req.hdr(x-user),lower if { path_beg /var/ }
    http-request set-header X-Var %[var(txn.who)] if { path_beg /var/ }
    http-request set-var-fmt(txn.f) "%[path]-%[method]" if { path_beg /varfmt/ }
    http-request set-header X-Varfmt %[var(txn.f)] if { path_beg /varfmt/ }
    http-request unset-var(txn.who) if { path_beg /unset/ }
    http-request set-header X-Unset "[%[var(txn.who)]]" if { path_beg /unset/ }
    http-request set-header X-Cap "%[capture.req.hdr(0)]|%[capture.req.hdr(1)]" if { path_beg /capture/ }
    http-request set-header X-Cond-Unless 1 unless { path_beg /set-header/ } || METH_GET
    http-request deny if { path_beg /deny/ }
    http-request deny deny_status 429 if { path_beg /deny429/ }
    http-request deny deny_status 400 if { path_beg /deny400/ }
    http-request return status 503 content-type text/html string "<h1>maintenance</h1>" hdr Retry-After 60 if { path_beg /maintenance/ }
    http-request return content-type text/plain lf-string "hello %[req.hdr(x-name)]" if { path_beg /lf/ }
    http-request return if { path_beg /empty-return/ }
    http-request return status 200 content-type text/plain file @BODY@ if { path_beg /file/ }
    http-request return status 200 content-type text/plain lf-file @LFBODY@ if { path_beg /lf-file/ }
    http-request return errorfile @RAW@ if { path_beg /errorfile/ }
    http-request return status 429 default-errorfiles if { path_beg /default-errorfiles/ }
    http-request deny deny_status 403 content-type text/plain string no hdr X-Why rules if { path_beg /deny-body/ }
    http-request use-service prometheus-exporter if { path_beg /metrics-service/ }
    http-request redirect location /elsewhere code 301 if { path_beg /r-location/ }
    http-request redirect location https://%[req.hdr(host)]/x%[path] if { path_beg /r-fmt/ }
    http-request redirect prefix /new if { path_beg /r-prefix/ }
    http-request redirect prefix /new drop-query if { path_beg /r-drop/ }
    http-request redirect scheme https if { path_beg /r-scheme/ }
    http-request redirect scheme https code 308 if { path_beg /r-308/ }
    http-request redirect location /c code 303 set-cookie SEEN=1 if { path_beg /r-cookie/ }
    http-request redirect location /c code 307 clear-cookie SEEN= if { path_beg /r-clear/ }
    http-request redirect code 301 prefix / drop-query append-slash if { path_beg /r-slash/ }
    http-request auth realm Private if { path_beg /auth/ } !{ http_auth(users) }
    http-request auth if { path_beg /auth-default/ }
    http-request set-header X-Group %[http_auth_group(users)] if { path_beg /auth/ }
    http-request allow if { path_beg /allow/ }
    http-request set-header X-After-Allow 1
"""

RESPONSE_CONFIG = r"""
frontend resp
    bind {bind_resp}
    http-request set-var(txn.path) path
    http-request deny if { path_beg /deny/ }
    http-response set-header X-Fe-Status %[status]
    http-response set-header X-Order fe-after-%[res.hdr(x-order)]
    http-response del-header X-Remove
    http-response replace-header Location ^http://internal/(.*)$ /\1
    http-response replace-value X-List ^old$ new
    http-response add-header X-Added a
    http-response set-status 418 if { status 404 }
    http-response set-status 299 reason Fine if { res.hdr(x-custom-status) -m found }
    http-response deny if { res.hdr(x-deny) -m found }
    http-response return status 404 content-type text/plain string gone if { res.hdr(x-gone) -m found }
    http-response redirect location /moved if { res.hdr(x-redirect) -m found }
    http-response set-header X-Cookie %[res.cook(sid)] if { res.cook(sid) -m found }
    http-response set-header X-Var %[var(txn.path)] if { var(txn.path) -m beg /var }
    http-response allow if { res.hdr(x-allow) -m found }
    http-response set-header X-Not-Allowed 1
    http-after-response set-header X-After %[status]
    http-after-response set-header Strict-Transport-Security "max-age=31536000"
    default_backend echo_resp

backend echo_resp
    http-request set-header X-Be-Req %[be_name]
    http-response set-header X-Order be
    http-response allow if { res.hdr(x-allow) -m found }
    http-response set-header X-Be-Not-Allowed 1
    http-after-response set-header X-Be-After 1
    server s1 {echo}
"""

SWITCH_CONFIG = r"""
frontend switch
    bind {bind_switch}
    use_backend b_%[req.hdr(x-target)] if { req.hdr(x-target) -m found }
    use_backend echo_a if { path_beg /a/ }
    use_backend echo_b
    default_backend echo

backend echo_a
    http-request set-header X-Backend a
    server s1 {echo}

backend echo_b
    http-request set-header X-Backend b
    server s1 {echo}

backend b_x
    http-request set-header X-Backend x
    server s1 {echo}

frontend logged
    bind {bind_logged}
    log stdout format raw local0
    capture request header X-Cap len 4
    capture response header X-Res len 6
    http-request set-var(txn.v) str(val)
    http-request capture req.hdr(x-more) len 3
    http-request capture req.hdr(x-id) len 40
    http-request capture req.hdr(x-none) len 40
    log-format "LOG %ci %HM %HU %HP %HQ %HV %{+Q}r %ST %b %s %f %[capture.req.hdr(2)] %{+Q}[capture.req.hdr(2)] %hr %hs %[capture.req.hdr(0)] %[var(txn.v)] [%[capture.req.hdr(3)]] %{+Q}o %[capture.req.hdr(2)] %{-Q}[capture.req.hdr(2)] %ts %tsc"
    default_backend echo

listen lst
    bind {bind_lst}
    http-request add-header X-Count 1
    http-response add-header X-Count 1
    server s1 {echo}
"""


def build_config(binds: dict[str, str], echo: str, files: dict[str, str]) -> str:
    fetch_rules = "".join(
        f"    http-request set-header X-Fetch %[{expr}] if {{ path_beg /fetch/{ident}/ }}\n"
        for ident, expr, _, _ in FETCHES)
    conv_rules = "".join(
        f"    http-request set-header X-Conv %[req.hdr(x-in),{chain}] "
        f"if {{ path_beg /conv/{ident}/ }}\n"
        for ident, chain, _ in CONVERTERS)
    acl_rules = "".join(
        f"    http-request set-header X-Acl 1 if {{ path_beg /acl/{ident}/ }} "
        f"{acl if acl.startswith('!') or acl.isupper() else '{ ' + acl + ' }'}\n"
        for ident, acl, _, _, _ in ACLS)
    text = f"""
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

userlist users
    group admins users bob
    user bob insecure-password secret
    user eve password {SHA512_HUNTER2}

frontend req
    bind {binds['req']}
    errorfile 429 @E429@
    capture request header X-Cap len 10
{REQUEST_RULES}
{fetch_rules}{conv_rules}{acl_rules}
    redirect location /kw-redirect if {{ path_beg /kw/ }}
    use_backend echo

backend echo
    server s1 {echo}
""" + RESPONSE_CONFIG.replace("{bind_resp}", binds["resp"]).replace("{echo}", echo) + \
        SWITCH_CONFIG.replace("{bind_switch}", binds["switch"]).replace(
            "{bind_lst}", binds["lst"]).replace("{bind_logged}", binds["logged"]).replace(
            "{echo}", echo)
    for name, path in files.items():
        text = text.replace(f"@{name}@", path)
    return text


@dataclass(frozen=True, slots=True)
class Case:
    frontend: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    method: str = "GET"
    expected_acl: bool | None = None


def cases() -> Iterator[tuple[str, Case]]:
    plain = [
        "/set-header/", "/set-fmt/", "/set-host/", "/add-header/", "/set-path/x?y=1",
        "/set-query/p?a=b", "/set-query/p", "/set-uri/old?q", "/set-method/", "/strip/a/b?c",
        "/stripped", "/varfmt/x", "/capture/", "/deny/", "/deny429/", "/deny400/",
        "/maintenance/", "/empty-return/", "/r-location/", "/r-fmt/a?b", "/r-prefix/p?q=1",
        "/r-drop/p?q=1", "/r-scheme/p?q=1", "/r-308/", "/r-cookie/", "/r-clear/",
        "/r-slash/dir?x=1", "/r-slash/dir/", "/auth-default/", "/allow/", "/kw/x",
        "/nothing/", "/file/", "/lf-file/x", "/errorfile/", "/default-errorfiles/",
        "/deny-body/",
    ]
    for path in plain:
        yield path.strip("/").replace("/", "_") or "root", Case("req", path)
    yield "del-header", Case("req", "/del-header/", {"X-Del": "x", "X-Keep": "y"})
    yield "del-beg", Case("req", "/del-beg/", {"X-Prefixed": "1", "X-Pre": "2", "X-Other": "3"})
    yield "replace-header", Case("req", "/replace-header/", {"X-Rep": "left-right"})
    yield "replace-value", Case("req", "/replace-value/", {"X-Val": "a1, b2, a3"})
    yield "var", Case("req", "/var/", {"X-User": "ALICE"})
    yield "unset-var", Case("req", "/unset/", {"X-User": "ALICE"})
    yield "capture-long", Case("req", "/capture/", {"X-Cap": "abcdefghijklmnop"})
    yield "post-unless", Case("req", "/nothing/", method="POST")
    yield "lf-return", Case("req", "/lf/", {"X-Name": "world"})
    yield "auth-none", Case("req", "/auth/")
    yield "auth-bad", Case("req", "/auth/", {"Authorization": BASIC_BAD})
    yield "auth-good", Case("req", "/auth/", {"Authorization": BASIC_BOB})
    for ident, _, rest, headers in FETCHES:
        yield f"fetch-{ident}", Case("req", f"/fetch/{ident}{rest}", headers)
    for ident, _, value in CONVERTERS:
        yield f"conv-{ident}", Case("req", f"/conv/{ident}/", {"X-In": value})
    for ident, _, rest, headers, expected in ACLS:
        yield f"acl-{ident}", Case("req", f"/acl/{ident}{rest}", headers, expected_acl=expected)
    respond = "X-Respond"
    yield "resp-plain", Case("resp", "/", {respond: "X-Remove=1; X-List=old, keep"})
    yield "resp-404", Case("resp", "/", {"X-Respond-Status": "404"})
    yield "resp-status-reason", Case("resp", "/", {respond: "X-Custom-Status=1"})
    yield "resp-deny", Case("resp", "/", {respond: "X-Deny=1"})
    yield "resp-return", Case("resp", "/", {respond: "X-Gone=1"})
    yield "resp-redirect", Case("resp", "/", {respond: "X-Redirect=1"})
    yield "resp-location", Case("resp", "/", {respond: "Location=http://internal/in/side",
                                              "X-Respond-Status": "302"})
    yield "resp-cookie", Case("resp", "/", {respond: "Set-Cookie=sid=s42; path=/"})
    yield "resp-var", Case("resp", "/var/x")
    yield "resp-allow", Case("resp", "/", {respond: "X-Allow=1"})
    yield "resp-after-deny", Case("resp", "/deny/")
    yield "switch-default", Case("switch", "/")
    yield "switch-cond", Case("switch", "/a/")
    yield "switch-dynamic", Case("switch", "/", {"X-Target": "x"})
    yield "switch-dynamic-miss", Case("switch", "/", {"X-Target": "nope"})
    yield "listen-once", Case("lst", "/")


CASES = dict(cases())


@dataclass(frozen=True, slots=True)
class Exchange:
    status_line: str
    headers: list[tuple[str, str]]
    body: bytes


class Pair:
    """haproxy and geoproxy running the same configuration, one echo backend behind both."""

    def __init__(self, haproxy: dict[str, int], geoproxy: dict[str, int],
                 outputs: dict[str, Callable[[], str]]) -> None:
        self.ports = {"haproxy": haproxy, "geoproxy": geoproxy}
        self.outputs = outputs

    def send(self, which: str, case: Case) -> Exchange:
        port = self.ports[which][case.frontend]
        headers = {"Host": "example.com", **case.headers}
        lines = [f"{case.method} {case.path} HTTP/1.1"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        with RawConnection(HOST, port) as connection:
            connection.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            answer: RawResponse = connection.read_response(case.method)
        status_line = answer.head.split(b"\r\n", 1)[0].decode("latin-1")
        return Exchange(status_line, answer.headers, answer.body)


def _start_haproxy(registry: ProcessRegistry, directory: Path, config: str,
                   ports: dict[str, int]) -> ManagedProcess:
    assert HAPROXY is not None
    path = directory / "haproxy.cfg"
    path.write_text(config)
    check = registry.start("haproxy-check", [HAPROXY, "-c", "-f", str(path)], directory)
    if check.process.wait(timeout=30) != 0:
        raise RuntimeError(f"haproxy refuses the configuration:\n{check.output()}")
    process = registry.start("haproxy", [HAPROXY, "-db", "-f", str(path)], directory,
                             session=True)
    for port in ports.values():
        wait_for_port(HOST, port, 15.0, process.is_running)
    return process


@pytest.fixture(scope="module")
def pair(module_stack: Stack, process_registry: ProcessRegistry) -> Iterator[Pair]:
    if HAPROXY is None:
        tool_missing("haproxy is not installed")
    directory = module_stack.directory
    files = {}
    for name, content in MAP_FILES.items():
        path = directory / f"{name.lower()}.map"
        path.write_text(content)
        files[name] = str(path)
    echo_port, *ports = free_ports(11)
    echo = process_registry.start(
        "echo", [sys.executable, "-m", "tests.support.echo_backend", str(echo_port)], directory,
        session=True)
    names = ("req", "resp", "switch", "lst", "logged")
    haproxy_ports = dict(zip(names, ports[:5], strict=True))
    geoproxy_ports = dict(zip(names, ports[5:10], strict=True))
    haproxy = None
    try:
        wait_for_port(HOST, echo_port, 15.0, echo.is_running)
        echo_address = f"{HOST}:{echo_port}"
        haproxy = _start_haproxy(
            process_registry, directory,
            build_config({n: f"{HOST}:{p}" for n, p in haproxy_ports.items()}, echo_address,
                         files), haproxy_ports)
        geoproxy = module_stack.proxy(
            build_config({n: f"{HOST}:{p}" for n, p in geoproxy_ports.items()}, echo_address,
                         files), workers=1)
        yield Pair(haproxy_ports, geoproxy_ports,
                   {"haproxy": haproxy.output, "geoproxy": geoproxy.output})
    finally:
        if haproxy is not None:
            haproxy.stop()
        echo.stop()


_NOT_COMPARED = frozenset({"connection", "keep-alive", "date"})


def _response_headers(exchange: Exchange, echoed: bool) -> list[tuple[str, str]]:
    """The response's fields, names in lower case as HAProxy 2.6 sends them; the length of
    an echoed body differs with the way repeated request fields were sent (see below)."""
    skipped = _NOT_COMPARED | ({"content-length"} if echoed else set())
    return sorted((name.lower(), value) for name, value in exchange.headers
                  if name.lower() not in skipped)


def _seen_by_backend(exchange: Exchange) -> dict[str, object] | None:
    """What the echo backend received, with repeated fields joined (geoproxy joins repeated
    request fields into one line; RFC 9110 5.3 makes both forms equal)."""
    try:
        echoed = json.loads(exchange.body)
    except ValueError:
        return None
    if not isinstance(echoed, dict) or "headers" not in echoed:
        return None
    joined: dict[str, str] = {}
    for name, value in echoed["headers"]:
        name = name.lower()
        if name in _NOT_COMPARED:
            continue
        separator = "; " if name == "cookie" else ", "
        joined[name] = value if name not in joined else joined[name] + separator + value
    return {"method": echoed["method"], "target": echoed["target"], "headers": joined}


@pytest.mark.parametrize("ident", list(CASES))
def test_haproxy_and_geoproxy_answer_alike(pair: Pair, ident: str) -> None:
    case = CASES[ident]
    theirs = pair.send("haproxy", case)
    ours = pair.send("geoproxy", case)
    assert ours.status_line == theirs.status_line
    seen_theirs, seen_ours = _seen_by_backend(theirs), _seen_by_backend(ours)
    echoed = seen_theirs is not None
    assert _response_headers(ours, echoed) == _response_headers(theirs, echoed)
    assert seen_ours == seen_theirs
    if seen_theirs is None:
        assert ours.body == theirs.body
    if case.expected_acl is not None:
        assert seen_theirs is not None
        headers = seen_theirs["headers"]
        assert isinstance(headers, dict)
        assert ("x-acl" in headers) is case.expected_acl


def test_use_service_prometheus_exporter_answers_with_metrics_in_both(pair: Pair) -> None:
    """The metrics themselves differ (each proxy reports its own); the answer's kind does
    not."""
    case = Case("req", "/metrics-service/")
    theirs, ours = pair.send("haproxy", case), pair.send("geoproxy", case)
    assert ours.status_line == theirs.status_line == "HTTP/1.1 200 OK"
    for exchange in (theirs, ours):
        content_type = dict((n.lower(), v) for n, v in exchange.headers)["content-type"]
        assert content_type.startswith("text/plain")
        assert b"# TYPE haproxy_" in exchange.body


def _log_line(output: Callable[[], str], marker: str) -> str:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for line in output().splitlines():
            if line.startswith("LOG ") and marker in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line with {marker!r} in:\n{output()[-2000:]}")


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/a?b=1", {"X-Cap": "abcdefg", "X-More": "12345", "X-Respond": "X-Res=response-value"}),
     ("/quoted", {"X-Cap": 'a"{|}', "X-Respond": "X-Res=a|b"}), ("/none", {})],
)
def test_log_format_lines_are_haproxys(pair: Pair, path: str, headers: dict[str, str]) -> None:
    lines = {}
    for which in ("haproxy", "geoproxy"):
        marker = f"{which}-{time.monotonic_ns()}"
        pair.send(which, Case("logged", path, {**headers, "X-Id": marker}))
        lines[which] = _log_line(pair.outputs[which], marker).replace(marker, "ID")
    assert lines["geoproxy"] == lines["haproxy"]
