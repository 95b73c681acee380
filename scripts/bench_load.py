"""The benchmark's load: wrk when installed, else bench_loadgen.py (gevent, keep-alive).

Either way one run is one fixed number of keep-alive connections for a fixed time, and gives a
``LoadResult``. wrk counts "Non-2xx or 3xx responses" (it has no cheaper way to count statuses);
the Python generator counts non-2xx exactly. HTTP/2 rows use h2load (nghttp2-client) over h2c
with prior knowledge: ``H2_CLIENTS`` connections of ``H2_STREAMS`` concurrent streams each (as
many requests in flight as wrk's connections); h2load reports no latency percentiles, so p50
is its mean time per request and p99 its maximum.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}
_PERCENTILE = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.M)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)


_H2_FINISHED = re.compile(r"^finished in [\d.]+s, ([\d.]+) req/s", re.M)
_H2_REQUESTS = re.compile(
    r"^requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout", re.M)
_H2_STATUS = re.compile(r"^status codes: (\d+) 2xx", re.M)
_H2_TIME = re.compile(
    r"^time for request:\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", re.M)
H2_CLIENTS = 8
H2_STREAMS = 4


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One load run: throughput, latency percentiles, bad answers and socket errors."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def load_tool() -> str:
    """``wrk`` when it is installed, else ``python``."""
    return "wrk" if shutil.which("wrk") else "python"


def run_load(url: str, connections: int, duration: float, tool: str,
             close: bool = False) -> LoadResult:
    """Drive ``url`` with ``connections`` keep-alive connections for ``duration`` seconds;
    ``close``: every request asks ``Connection: close`` (a new connection, and over TLS a new
    handshake, per request: wrk only)."""
    if tool == "wrk":
        return run_wrk(url, connections, duration, close=close)
    if close:
        raise ValueError("Connection: close runs need wrk")
    return run_python(url, connections, duration)


def run_wrk(url: str, connections: int, duration: float, script: str | None = None,
            close: bool = False) -> LoadResult:
    """wrk's report; ``script``: a wrk Lua script's path (``-s``); ``close``: every request
    with ``Connection: close``."""
    seconds = max(1, round(duration))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if close:
        argv[1:1] = ["-H", "Connection: close"]
    if script is not None:
        argv[1:1] = ["-s", script]
    output = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    return parse_wrk(output)


def parse_wrk(output: str) -> LoadResult:
    """Read wrk's ``--latency`` report."""
    percentiles = {
        int(p): float(value) * _UNITS[unit] for p, value, unit in _PERCENTILE.findall(output)
    }
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    if rps is None or total is None or set(percentiles) != {50, 99}:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return LoadResult(
        requests=int(total.group(1)),
        rps=float(rps.group(1)),
        p50_ms=percentiles[50],
        p99_ms=percentiles[99],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_python(url: str, connections: int, duration: float) -> LoadResult:
    argv = [sys.executable, str(HERE / "bench_loadgen.py"), url]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    output = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout
    return LoadResult(**json.loads(output))


def run_h2load(url: str, duration: float) -> LoadResult:
    """h2load over h2c, or over TLS (ALPN h2) for an https URL (module doc); raises
    FileNotFoundError when it is not installed."""
    if shutil.which("h2load") is None:
        raise FileNotFoundError("h2load is not installed (Debian: nghttp2-client)")
    seconds = max(1, round(duration))
    argv = ["h2load", "-t1", f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}", f"-D{seconds}", url]
    output = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    return parse_h2load(output)


def parse_h2load(output: str) -> LoadResult:
    rps, requests = _H2_FINISHED.search(output), _H2_REQUESTS.search(output)
    status, times = _H2_STATUS.search(output), _H2_TIME.search(output)
    if rps is None or requests is None or status is None or times is None:
        raise ValueError(f"unexpected h2load output:\n{output}")
    done = int(requests.group(1))
    return LoadResult(
        requests=done,
        rps=float(rps.group(1)),
        p50_ms=float(times.group(3)) * _UNITS[times.group(4)],
        p99_ms=float(times.group(1)) * _UNITS[times.group(2)],
        non_2xx=done - int(status.group(1)),
        errors=sum(int(n) for n in requests.group(3, 4, 5)),
    )
