"""The rules layer without sockets: matchers, converters, fetches, log-format strings, the
rule loop, and the configuration errors for what geoproxy refuses (file, line, keyword)."""

from __future__ import annotations

import pytest

from geoproxy.config import parse_text
from geoproxy.errors import ConfigError
from geoproxy.rules.calls import ParseContext, RuleError
from geoproxy.rules.conditions import compile_condition
from geoproxy.rules.engine import compile_rules, run_rules
from geoproxy.rules.expr import compile_expr, parse_expr
from geoproxy.rules.fetches import CompileEnv
from geoproxy.rules.logformat import compile_logformat, parse_logformat
from geoproxy.rules.matchers import PatternError, check_patterns, compile_match
from geoproxy.rules.run import split_target
from geoproxy.rules.spec import MatchSpec
from geoproxy.rules.txn import PROC_VARS, Txn

HEAD = (
    "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n"
    "    timeout server 1s\n"
    "backend b\n    server s 127.0.0.1:9001\n"
    "frontend f\n    bind :80\n    default_backend b\n"
)


def txn(uri: str = "/", **headers: str) -> Txn:
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": uri, "REMOTE_ADDR": "10.1.2.3",
               "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1"}
    environ.update({"HTTP_" + k.upper(): v for k, v in headers.items()})
    return Txn(environ, "f", now=1_700_000_000.0)


def evaluate(expression: str, request: Txn | None = None) -> object:
    expr = parse_expr(expression, ParseContext())
    return compile_expr(expr, CompileEnv())(request or txn())


@pytest.mark.parametrize(
    ("method", "patterns", "value", "expected"),
    [
        ("dir", ("api",), "/v1/api/x", True), ("dir", ("api",), "/v1/apis", False),
        ("dir", ("/a/b/",), "/x/a/b/c", True), ("dom", ("example",), "www.example.com", True),
        ("dom", ("ample",), "www.example.com", False), ("dom", ("com",), "host.com:80", True),
        ("int", ("gt", "5"), "6", True), ("int", ("le", "5"), 6, False),
        ("int", ("3:7",), 7, True), ("int", (":2",), 3, False), ("int", ("10:",), "12", True),
        ("len", ("3",), "abc", True), ("ip", ("10.0.0.0/8",), "10.9.9.9", True),
        ("ip", ("10.0.0.0/255.255.0.0",), "10.1.0.1", False),
        ("ip", ("::ffff:10.0.0.0/104",), "10.2.3.4", True),
        ("beg", ("ab", "x"), "abc", True), ("end", ("bc",), "abc", True),
        ("sub", ("zz",), "abc", False), ("reg", ("^a.c$",), "abc", True),
        ("bool", (), 0, False), ("bool", (), "1", True), ("found", (), "", True),
        ("bin", ("4142",), "AB", True), ("str", (), "x", False),
    ],
)
def test_matching_methods_compare_as_haproxy_documents(
    method: str, patterns: tuple[str, ...], value: object, expected: bool
) -> None:
    assert compile_match(MatchSpec(method, patterns))(value) is expected


def test_patterns_are_checked_when_the_configuration_loads() -> None:
    for method, pattern in (("int", "x"), ("ip", "300.1.1.1"), ("reg", "("), ("bin", "zz"),
                            ("found", "x")):
        with pytest.raises(PatternError):
            check_patterns(method, [pattern], False)


@pytest.mark.parametrize(
    ("expression", "request_", "expected"),
    [
        ("req.hdr(x),word(2,.)", txn(x="a..b.c"), "b"),
        ("req.hdr(x),field(2,.)", txn(x="a..b.c"), ""),
        ("req.hdr(x),word(-1,.,0)", txn(x="a.b.c"), "a.b.c"),
        ("req.hdr(x),field(-2,.,2)", txn(x="a.b.c"), "a.b"),
        ("req.hdr(x),regsub(a,b,gi)", txn(x="AaA"), "bbb"),
        ("req.hdr(x)", txn(x='a, "b, c"'), '"b, c"'),
        ("hdr_cnt(x)", txn(x='a, "b, c"'), 2),
        ("path", txn("http://example.com/p?q"), "/p"),
        ("query", txn("/p?"), ""),
        ("url_param(a)", txn("/p?b=1&a=2&a=3"), "2"),
        ("src,ipmask(16)", txn(), "10.1.0.0"),
        ("date,http_date", txn(), "Tue, 14 Nov 2023 22:13:20 GMT"),
        ("var(txn.nothing,fallback)", txn(), "fallback"),
        ("int(7),div(0)", txn(), None),
        ("str(x),bool", txn(), None),
    ],
)
def test_fetches_and_converters_give_haproxys_samples(
    expression: str, request_: Txn, expected: object
) -> None:
    value = evaluate(expression, request_)
    assert (str(value) if value is not None and not isinstance(value, int) else value) == \
        expected


def test_variables_have_haproxys_scopes() -> None:
    request = txn()
    request.set_var("req.a", 1)
    request.set_var("txn.b", 2)
    request.set_var("proc.c", 3)
    request.enter_response(200, "OK", [])
    assert (request.get_var("req.a"), request.get_var("txn.b")) == (None, 2)
    assert txn().get_var("proc.c") == 3
    PROC_VARS.clear()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"), ("%%", "%"), ("<%[req.hdr(host)]>", "<example.com>"),
        ("%[req.hdr(none)]", ""), ("%ci:%fp %HM %HU %HQ", "10.1.2.3:8080 GET /p?q=1 ?q=1"),
        ("%{+Q}[req.hdr(host)]", "example.com"), ("%[req.hdr(host),upper]", "EXAMPLE.COM"),
    ],
)
def test_log_format_strings_render_as_in_header_values(text: str, expected: str) -> None:
    spec = parse_logformat(text, ParseContext())
    assert compile_logformat(spec, CompileEnv())(txn("/p?q=1", host="example.com")) == expected


@pytest.mark.parametrize("text", ["%[", "%{+Q", "%bogus", "%[nosuchfetch]", "%{+Z}r",
                                  "%[path,nosuchconverter]"])
def test_a_broken_log_format_is_refused(text: str) -> None:
    with pytest.raises(RuleError):
        parse_logformat(text, ParseContext())


@pytest.mark.parametrize(
    ("uri", "expected"),
    [("/a?b", ("", "/a", "b")), ("/a", ("", "/a", None)),
     ("http://h:1/x?y", ("http://h:1", "/x", "y")), ("http://h?q", ("http://h", "", "q"))],
)
def test_a_target_splits_into_authority_path_and_query(
    uri: str, expected: tuple[str, str, str | None]
) -> None:
    assert split_target(uri) == expected


def test_allow_ends_only_its_own_list_and_an_answer_ends_them_all() -> None:
    config = parse_text(
        HEAD + "    http-request set-header X-A 1\n    http-request allow if { path /allow }\n"
        "    http-request set-header X-B 1\n    http-request deny if { path /deny }\n",
        "t.cfg", env={})
    frontend = config.frontends[0]
    rules = compile_rules(frontend.rules, frontend.name, CompileEnv())
    assert rules is not None
    allowed = txn("/allow")
    assert run_rules(rules.request, allowed) is None
    assert ("HTTP_X_A" in allowed.environ, "HTTP_X_B" in allowed.environ) == (True, False)
    denied = run_rules(rules.request, txn("/deny"))
    assert denied is not None and (denied.status, denied.termination) == (403, "PR")


def test_a_header_value_with_a_line_break_fails_the_rewrite_with_500() -> None:
    config = parse_text(HEAD + "    http-request set-header X %[url_param(v),url_dec]\n",
                        "t.cfg", env={})
    rules = compile_rules(config.frontends[0].rules, "f", CompileEnv())
    assert rules is not None
    reply = run_rules(rules.request, txn("/?v=a%0d%0aInjected:%201"))
    assert reply is not None and reply.status == 500


def test_conditions_read_any_fetch_of_the_table() -> None:
    config = parse_text(HEAD + "    acl a req.hdr(host),lower -m end .example\n"
                        "    use_backend b if a\n", "t.cfg", env={})
    (rule,) = config.frontends[0].use_backends
    assert rule.condition is not None
    holds = compile_condition(rule.condition)
    assert holds(txn(host="WWW.EXAMPLE")) and not holds(txn(host="example.org"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("http-request track-sc0 src",
         "Proxy 'f': unable to find table 'f' referenced by track-sc0."),
        ("http-request track-sc3 src",
         "error detected in frontend 'f' while parsing 'http-request track-sc3' rule : 3 "
         "track-sc number exceeding 2 (MAX_SESS_STKCTR-1) value."),
        ("http-request sc-inc-gpc0(4)",
         "error detected in frontend 'f' while parsing 'http-request sc-inc-gpc0(4)' rule : "
         "invalid stick table track ID. The max allowed ID is 2."),
        ("http-request deny if { src_http_req_rate gt 10 }",
         "unable to find table 'f' referenced in arg 1 of ACL keyword 'src_http_req_rate' in "
         "proxy 'f'."),
        ("http-request set-header X %[src,table_gpc0(nope)]",
         "unable to find table 'nope' referenced in arg 1 of conversion keyword 'table_gpc0' "
         "for sample fetch keyword 'src' in proxy 'f'."),
        ("http-request silent-drop",
         "'http-request silent-drop' is not supported by geoproxy: geoproxy does not drop "
         "client connections silently."),
        ("http-request use-service lua.x",
         "error detected in frontend 'f' while parsing 'http-request use-service' rule : "
         "'use-service': service 'lua.x' is not supported: geoproxy does not run Lua."),
        ("http-response set-header X %[path]",
         "error detected in frontend 'f' while parsing 'http-response set-header' rule : "
         "sample fetch <path> may not be reliably used here because it needs 'HTTP request "
         "headers' which is not available here."),
        ("http-request set-header X %[ssl_fc_session_id]",
         "error detected in frontend 'f' while parsing 'http-request set-header' rule : fetch "
         "method 'ssl_fc_session_id' is not supported: geoproxy's TLS fetches are ssl_fc, "
         "ssl_fc_sni, ssl_fc_protocol, ssl_fc_cipher, ssl_fc_alpn, ssl_c_used, ssl_c_verify, "
         "ssl_c_s_dn and ssl_c_i_dn."),
        ("http-request auth if { http_auth(nolist) }",
         "proxy 'f': unable to find userlist 'nolist' referenced in arg 1 of ACL keyword "
         "'http_auth'."),
        ("http-request set-header X_Under 1",
         "error detected in frontend 'f' while parsing 'http-request set-header' rule : "
         "'set-header': request header names with '_' ('X_Under') are not supported by "
         "geoproxy (its workers drop such request headers, as gunicorn does)."),
        ("http-request redirect location /x code 305",
         "error detected in frontend 'f' while parsing 'http-request redirect' rule : "
         "'redirect': unsupported HTTP code '305' (expected one of 301, 302, 303, 307 or 308)."),
    ],
)
def test_what_geoproxy_refuses_is_an_error_naming_file_line_and_keyword(
    line: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_text(HEAD + f"    {line}\n", "t.cfg", env={})
    (error,) = caught.value.errors
    assert (str(error.location), error.message) == ("t.cfg:11", message)


def test_the_systems_crypt_checks_a_userlist_hash_as_haproxy_does() -> None:
    from geoproxy.rules import syscrypt

    hashed = syscrypt.crypt("secret", "$6$saltsalt$")
    assert hashed is not None and hashed.startswith("$6$saltsalt$")
    assert syscrypt.crypt("secret", hashed) == hashed
    assert syscrypt.crypt("Secret", hashed) != hashed
    assert syscrypt.crypt("secret", "$9$unknown-scheme$") is None
