"""``check(path)``: the report of ``haproxy -c -f FILE``, in geoproxy's words."""

from __future__ import annotations

import io
from pathlib import Path

from geoproxy.config.check import check

VALID = """defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend f
    bind 127.0.0.1:8080
    default_backend b
backend b
    server s1 127.0.0.1:9001
"""


def run(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = check(str(path), out, err)
    return status, out.getvalue(), err.getvalue()


def test_a_valid_file_says_so_on_stdout_and_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "ok.cfg"
    path.write_text(VALID)
    assert run(path) == (0, "Configuration file is valid\n", "")


def test_warnings_go_to_stderr_and_the_file_is_still_valid(tmp_path: Path) -> None:
    path = tmp_path / "warn.cfg"
    path.write_text("global\n    daemon\n" + VALID)
    status, out, err = run(path)
    assert status == 0
    assert out == "Warnings were found.\nConfiguration file is valid\n"
    assert err == (
        f"[WARNING]  config : parsing [{path}:2] : 'daemon' is ignored by geoproxy (process "
        "management belongs to gunicorn and geoproxy's command line).\n"
    )


def test_http_use_proxy_header_is_accepted_as_haproxy_26_accepts_it_doing_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "pxh.cfg"
    path.write_text(VALID.replace("    bind 127.0.0.1:8080\n",
                                  "    bind 127.0.0.1:8080\n    option http-use-proxy-header\n"))
    status, _, err = run(path)
    assert status == 0
    assert err == (
        f"[WARNING]  config : parsing [{path}:8] : 'option http-use-proxy-header' is ignored by "
        "geoproxy (HAProxy 2.6 accepts it and does nothing with it either).\n"
    )


def test_a_proxy_without_bind_or_backend_is_valid_with_warnings_as_in_haproxy(
    tmp_path: Path,
) -> None:
    """HAProxy 2.6 accepts both: a frontend that only redirects (to HTTPS) has no backend; a
    ``listen`` without ``bind`` gets its warning, word for word."""
    path = tmp_path / "nb.cfg"
    path.write_text(VALID + "listen l\n    server s 127.0.0.1:9002\n"
                    "frontend r\n    bind 127.0.0.1:8081\n    http-request redirect scheme https\n")
    status, _, err = run(path)
    assert status == 0
    assert err == (
        f"[WARNING]  config : parsing [{path}:11] : proxy 'l' has no 'bind' directive. Please "
        "declare it as a backend if this was intended.\n"
        f"[WARNING]  config : parsing [{path}:13] : frontend 'r' has no 'default_backend' and no "
        "'use_backend' rule: the requests its rules do not answer get a 503 (the connections of "
        "a TCP frontend are closed).\n"
    )


def test_errors_are_alerts_followed_by_haproxys_closing_lines_and_exit_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.cfg"
    path.write_text("global\n    daemon\n    maxconn lots\n" + VALID + "    bogus\n")
    status, out, err = run(path)
    assert (status, out) == (1, "")
    assert err.splitlines() == [
        f"[WARNING]  config : parsing [{path}:2] : 'daemon' is ignored by geoproxy (process "
        "management belongs to gunicorn and geoproxy's command line).",
        f"[ALERT]    config : parsing [{path}:3] : 'maxconn' expects an integer argument "
        "(got 'lots').",
        f"[ALERT]    config : parsing [{path}:14] : unknown keyword 'bogus' in 'backend' "
        "section (geoproxy supports: mode, acl, timeout, contimeout, clitimeout, srvtimeout, "
        "errorfile, errorfiles, option, retries, balance, hash-type, cookie, dynamic-cookie-key, "
        "http-check, default-server, server, server-template, stick-table, stick, "
        "force-persist, ignore-persist, stats, tcp-request, tcp-check, external-check, "
        "compression, http-reuse, http-request, http-response, http-after-response, redirect).",
        f"[ALERT]    config : Error(s) found in configuration file : {path}",
        "[ALERT]    config : Fatal errors found in configuration.",
    ]


def test_a_missing_file_is_an_alert(tmp_path: Path) -> None:
    path = tmp_path / "absent.cfg"
    status, out, err = run(path)
    assert status == 1
    # HAProxy 2.6's line, without a line number that would mean nothing
    assert err.splitlines()[0] == (
        f"[ALERT]    config : Cannot open configuration file/directory {path} : "
        "No such file or directory")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cfg"
    path.write_bytes(b"global\n    maxconn 10\n    # caf\xe9\n")
    status, _, err = run(path)
    assert status == 1
    assert f"parsing [{path}:3] : the configuration is not UTF-8 text (byte 0xe9)." in err
