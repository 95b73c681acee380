"""The processes the benchmark measures, each started on loopback and stopped by pid.

Rules:
- Every process writes to a log in the bench's work directory and is stopped by its pid
  (SIGTERM, a bounded wait, SIGKILL), the last started first.
- A service is ready when its port accepts connections and ``GET /`` answers 200, both within
  ``READY_TIMEOUT`` seconds; otherwise starting it raises ServiceError with its log's end.
- ``cpu_roots`` are the pids whose process trees serve the load (the proxy, and its Redis):
  their CPU is what the benchmark charges to the row.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from geoproxy.demo.fleet import BackendSpec, backend_command, wait_for_port  # noqa: E402
from geoproxy.runtime.embedded_redis import (  # noqa: E402
    EmbeddedRedis,
    free_tcp_port,
    stop_child,
)

__all__ = ["free_tcp_port"]

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0
BODY_1K = "x" * 1024
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class ServiceError(RuntimeError):
    """A service did not become ready."""


@dataclass
class Service:
    """One running thing the load can hit (``url``), and how to stop it."""

    name: str
    url: str
    cpu_roots: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop_child(process, 5.0)
        for cleanup in reversed(self.cleanups):
            cleanup()


def find_binary(name: str) -> str | None:
    return shutil.which(name, path=SBIN)


def spawn(
    service: Service, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.update(env or {})
    with open(log, "ab") as out:
        process = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service.processes.append(process)
    return process


def wait_ready(service: Service, port: int, log: Path, *, http2: bool = False) -> None:
    """Port open, then ``GET /`` answers 200 (a proxy may need a moment to see its servers),
    over HTTP/2 with prior knowledge for an ``http2`` service."""
    process = service.processes[-1]
    deadline = time.monotonic() + READY_TIMEOUT
    try:
        wait_for_port(HOST, port, READY_TIMEOUT, lambda: process.poll() is None)
        insecure = ssl.create_default_context()
        insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE  # its own cert
        while True:
            if http2:
                with contextlib.suppress(OSError, ValueError):
                    if _h2_status(port) == 200:
                        return
            else:
                with contextlib.suppress(OSError):
                    scheme = service.url.partition(":")[0]
                    with urllib.request.urlopen(f"{scheme}://{HOST}:{port}/", timeout=2,
                                                context=insecure) as answer:
                        if answer.status == 200:
                            return
            if time.monotonic() > deadline or process.poll() is not None:
                raise TimeoutError(f"GET / on port {port} did not answer 200")
            time.sleep(0.1)
    except (TimeoutError, ChildProcessError) as exc:
        tail = log.read_text("utf-8", "replace")[-3000:] if log.exists() else ""
        service.stop()
        raise ServiceError(f"{service.name}: {exc}\n--- {log} ---\n{tail}") from exc


def _h2_status(port: int) -> int:
    """The status of ``GET /`` over h2c (prior knowledge), on a new connection."""
    from h2.config import H2Configuration
    from h2.connection import H2Connection
    from h2.events import ResponseReceived

    conn = H2Connection(H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/"),
                          (":authority", f"{HOST}:{port}")], end_stream=True)
    with socket.create_connection((HOST, port), timeout=2) as sock:
        sock.sendall(conn.data_to_send())
        while data := sock.recv(65536):
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    for name, value in event.headers or ():
                        if name in (":status", b":status"):
                            return int(value)
    raise ValueError("no HTTP/2 response")


# -- backends ---------------------------------------------------------------------------------


def start_nginx(work: Path, ports: Sequence[int]) -> Service:
    """One nginx process, one server block per port, each answering a 1 KB body."""
    nginx = find_binary("nginx")
    assert nginx is not None
    (work / "nginx-temp").mkdir(exist_ok=True)
    temp = work / "nginx-temp"
    servers = "\n".join(
        f"  server {{ listen {HOST}:{port}; location / {{ add_header X-Server s{i}; "
        f'return 200 "{BODY_1K}"; }} }}'
        for i, port in enumerate(ports, 1)
    )
    conf = work / "nginx.conf"
    conf.write_text(
        "worker_processes 1;\ndaemon off;\nmaster_process off;\n"
        f"error_log {work}/nginx-error.log warn;\npid {work}/nginx.pid;\n"
        "events { worker_connections 4096; }\n"
        "http {\n  access_log off;\n  default_type text/plain;\n"
        "  keepalive_requests 10000000;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n"
        f"  scgi_temp_path {temp}/scgi;\n{servers}\n}}\n"
    )
    service = Service("nginx", f"http://{HOST}:{ports[0]}/")
    log = work / "nginx.log"
    process = spawn(service, [nginx, "-p", str(work), "-c", str(conf), "-e", str(log)], log)
    service.cpu_roots.append(process.pid)
    for port in ports:
        wait_ready(service, port, log)
    return service


def start_demo_backends(work: Path, ports: Sequence[int]) -> Service:
    """Demo backends (geoproxy.demo.backend), one process per port."""
    service = Service("demo backends", f"http://{HOST}:{ports[0]}/")
    for i, port in enumerate(ports, 1):
        log = work / f"backend-s{i}.log"
        process = spawn(service, backend_command(BackendSpec(f"s{i}", port, HOST)), log)
        service.cpu_roots.append(process.pid)
        wait_ready(service, port, log)
    return service


# -- proxies and servers ----------------------------------------------------------------------


# the `--rules` row's frontend: a handful of typical request header rules
RULES = (
    "    http-request set-header X-Forwarded-Proto http\n"
    "    http-request set-header X-Real-IP %[src]\n"
    "    http-request set-header X-Forwarded-Host %[req.hdr(host)]\n"
    "    http-request set-header X-Forwarded-Port %[dst_port]\n"
    "    http-request add-header X-Frontend %f if { path_beg / }\n"
)


# a rate limit on stick counters that is never reached: what tracking costs (one key: src)
COUNTER_RULES = (
    "    stick-table type string len 32 size 1m expire 10s store http_req_rate(10s)\n"
    "    http-request track-sc0 src\n"
    "    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }\n"
)


def proxy_config(port: int, backend_ports: Sequence[int], global_lines: str = "",
                 frontend_lines: str = "", bind_options: str = "") -> str:
    """The benchmark's configuration: leastconn, cookie insert, over the backends;
    ``frontend_lines`` go in the frontend (the rules row), ``bind_options`` after the bind's
    address (``proto h2``: the HTTP/2 rows; ``ssl crt PEM``: the TLS rows)."""
    servers = "\n".join(
        f"    server s{i} {HOST}:{p} cookie s{i}" for i, p in enumerate(backend_ports, 1)
    )
    return (
        f"global\n{global_lines}"
        "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n"
        "    timeout server 30s\n"
        f"frontend fe\n    bind {HOST}:{port}{bind_options}\n{frontend_lines}"
        "    default_backend be\n"
        "backend be\n    balance leastconn\n    cookie SERVERID insert indirect nocache\n"
        f"{servers}\n"
    )


def certificate(work: Path) -> Path:
    """The TLS rows' certificate (self-signed, as the demo's), made once per run."""
    from geoproxy.demo.certificate import self_signed

    path = work / "bench-cert.pem"
    return path if path.exists() else self_signed(path)


def start_haproxy(work: Path, port: int, backend_ports: Sequence[int],
                  bind_options: str = "", tls: bool = False,
                  alpn: str = "http/1.1") -> Service:
    haproxy = find_binary("haproxy")
    assert haproxy is not None
    name = "haproxy-tls" if tls else "haproxy-h2" if bind_options else "haproxy"
    name += "-h2" if tls and "h2" in alpn else ""
    conf = work / f"{name}.cfg"
    bind = f" ssl crt {certificate(work)} alpn {alpn}" if tls else bind_options
    conf.write_text(proxy_config(port, backend_ports, "    nbthread 1\n    maxconn 4096\n",
                                 bind_options=bind))
    service = Service(name, f"{'https' if tls else 'http'}://{HOST}:{port}/")
    log = work / f"{name}.log"
    process = spawn(service, [haproxy, "-db", "-f", str(conf)], log)
    service.cpu_roots.append(process.pid)
    wait_ready(service, port, log, http2="h2" in bind_options)
    return service


def start_redis(service: Service) -> EmbeddedRedis:
    """A private Redis for one row; its CPU is charged to that row."""
    redis = EmbeddedRedis().start()
    service.cleanups.append(redis.stop)
    service.cpu_roots.append(redis.pid)
    return redis


def start_gunicorn(
    work: Path, name: str, port: int, app: str, env: Mapping[str, str] | None = None
) -> Service:
    """``app`` (``module:callable`` under scripts/) in gunicorn, 2 gevent workers."""
    service = Service(name, f"http://{HOST}:{port}/")
    return start_gunicorn_into(service, work, port, app, env)


def start_gunicorn_into(
    service: Service, work: Path, port: int, app: str, env: Mapping[str, str] | None = None
) -> Service:
    log = work / f"gunicorn-{port}.log"
    argv = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2"]
    argv += ["--worker-connections", "4000", "-b", f"{HOST}:{port}"]
    argv += ["--chdir", str(ROOT / "scripts"), "--log-level", "warning", app]
    process = spawn(service, argv, log, env)
    service.cpu_roots.append(process.pid)
    wait_ready(service, port, log)
    return service


def start_geoproxy(
    work: Path, port: int, backend_ports: Sequence[int], frontend_lines: str = "",
    bind_options: str = "", tls: bool = False, workers: int = 2, alpn: str = "http/1.1",
) -> Service:
    """``geoproxy run``, 2 workers, with a Redis the bench starts (so its CPU is counted)."""
    name = "geoproxy-rules" if frontend_lines else "geoproxy-h2" if bind_options else "geoproxy"
    name += "-tls" if tls else ""
    name += "-h2" if tls and "h2" in alpn else ""
    service = Service(name, f"{'https' if tls else 'http'}://{HOST}:{port}/")
    bind = f" ssl crt {certificate(work)} alpn {alpn}" if tls else bind_options
    try:
        redis = start_redis(service)
        conf = work / f"{name}.cfg"
        conf.write_text(proxy_config(port, backend_ports, frontend_lines=frontend_lines,
                                     bind_options=bind))
        log = work / f"{name}.log"
        argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(conf)]
        argv += ["--workers", str(workers), "--redis", redis.url]
        process = spawn(service, argv, log)
        service.cpu_roots.append(process.pid)
        wait_ready(service, port, log, http2="h2" in bind_options)
    except BaseException:
        service.stop()
        raise
    return service
