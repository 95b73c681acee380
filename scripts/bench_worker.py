"""CPU per request of ONE geoproxy worker: the stable number to compare changes by.

    python scripts/bench_worker.py [--duration 6] [--rounds 3] [--profile OUT.txt] [--hello]
                                   [--rules]

Starts nginx with two 1 KB servers, a private Redis on a free port, and
``geoproxy run --workers 1`` (balance leastconn, cookie insert), then for each round reads the
worker's utime + stime from /proc before and after ``wrk -t1 -c32 -dNs`` and prints the CPU
microseconds per request (and Redis's). With ``--profile`` a py-spy ``top``-style summary of the
worker under load is written (py-spy record, raw format, folded by function). ``--hello`` measures
gunicorn's own gevent hello world instead (the floor the proxy is compared with); ``--rules``
adds the benchmark's five header rules (``bench_services.RULES``) to the frontend.
Every process is started here on 127.0.0.1 and stopped by pid; every wait is bounded.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_services as services
from bench_cpu import TICKS, _stat
from bench_load import parse_wrk
from bench_services import Service


def cpu_seconds(pid: int) -> float:
    user, system = cpu_split(pid)
    return user + system


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process so far."""
    fields = _stat(pid)
    assert fields is not None, f"process {pid} is gone"
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def worker_pid(master: int) -> int:
    """The single worker of a gunicorn master (bounded wait)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise TimeoutError("no worker appeared")


SHOW_WRK = False


def wrk(url: str, seconds: int) -> tuple[int, float, float]:
    argv = ["wrk", "-t1", "-c32", f"-d{seconds}s", "--latency", url]
    output = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    if SHOW_WRK:
        print(output)
    result = parse_wrk(output)
    return result.requests, result.rps, result.p99_ms


RULES = False  # --rules: the frontend carries bench_services.RULES


def start(work: Path, hello: bool, workers: int) -> tuple[Service, Service, int | None]:
    ports = [services.free_tcp_port(), services.free_tcp_port()]
    backends = services.start_nginx(work, ports)
    try:
        return _start_proxy(work, hello, workers, ports, backends)
    except BaseException:
        backends.stop()
        raise


def _start_proxy(
    work: Path, hello: bool, workers: int, ports: list[int], backends: Service
) -> tuple[Service, Service, int | None]:
    port = services.free_tcp_port()
    service = Service("geoproxy", f"http://127.0.0.1:{port}/")
    if hello:
        log = work / "hello.log"
        argv = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1"]
        argv += ["--worker-connections", "4000", "-b", f"127.0.0.1:{port}"]
        argv += ["--chdir", str(services.ROOT / "scripts"), "--log-level", "warning"]
        argv += ["bench_apps.hello:app"]
        services.spawn(service, argv, log)
        services.wait_ready(service, port, log)
        return backends, service, None
    redis = services.start_redis(service)
    conf = work / "geoproxy.cfg"
    conf.write_text(services.proxy_config(
        port, ports, frontend_lines=services.RULES if RULES else ""))
    log = work / "geoproxy.log"
    argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(conf)]
    argv += ["--workers", str(workers), "--redis", redis.url]
    services.spawn(service, argv, log)
    services.wait_ready(service, port, log)
    return backends, service, redis.pid


def profile(pid: int, seconds: int, url: str, out: Path) -> None:
    raw = out.with_suffix(".folded")
    # --gil: only samples holding the GIL, so time spent runnable but descheduled inside a
    # send() (which wakes the receiver on this 2-core machine) does not pass for CPU
    argv = [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid)]
    argv += ["-d", str(seconds), "-r", "1000", "-f", "raw", "--gil", "-o", str(raw)]
    argv += ["--nonblocking"]
    spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk(url, seconds)
    spy.wait(timeout=seconds + 30)
    own: collections.Counter[str] = collections.Counter()
    total_in: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        # by function: "name (file:line)" -> "name (file)"
        frames = [frame.rpartition(":")[0] + ")" for frame in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total_in[frame] += count
    lines = [f"{samples} samples", "", "own time (top 40):"]
    lines += [f"{100 * n / samples:6.1f}%  {f}" for f, n in own.most_common(40)]
    lines += ["", "total time (top 60):"]
    lines += [f"{100 * n / samples:6.1f}%  {f}" for f, n in total_in.most_common(60)]
    out.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--hello", action="store_true")
    parser.add_argument("--rules", action="store_true", help="five header rules in the frontend")
    parser.add_argument("--workers", type=int, default=1, help="CPU is read for the first one")
    parser.add_argument("--wrk-output", action="store_true", help="print wrk's whole report")
    parser.add_argument("--strace", action="store_true", help="count the worker's syscalls")
    args = parser.parse_args()
    global SHOW_WRK, RULES
    SHOW_WRK = args.wrk_output
    RULES = args.rules
    work = Path(tempfile.mkdtemp(prefix="geoproxy-benchworker-"))
    backends = service = None
    try:
        backends, service, redis_pid = start(work, args.hello, args.workers)
        pid = worker_pid(service.processes[-1].pid)
        wrk(service.url, 2)  # warm-up
        for _ in range(args.rounds):
            (user0, sys0), redis_before = cpu_split(pid), cpu_seconds(redis_pid) if redis_pid else 0
            requests, rps, p99 = wrk(service.url, args.duration)
            user1, sys1 = cpu_split(pid)
            used = user1 - user0 + sys1 - sys0
            redis_used = (cpu_seconds(redis_pid) - redis_before) if redis_pid else 0
            print(
                f"{requests} requests, {rps:,.0f} req/s, p99 {p99:.2f} ms, worker "
                f"{1e6 * used / requests:.0f} us CPU/request "
                f"({1e6 * (user1 - user0) / requests:.0f} user), redis "
                f"{1e6 * redis_used / requests:.0f} us/request",
                flush=True,
            )
        if args.strace:
            trace = subprocess.Popen(
                ["strace", "-c", "-p", str(pid)], stderr=subprocess.PIPE, text=True
            )
            time.sleep(0.5)
            requests, _, _ = wrk(service.url, args.duration)
            trace.terminate()
            print(f"{requests} requests under strace\n{trace.communicate(timeout=30)[1]}")
        if args.profile:
            profile(pid, args.duration, service.url, args.profile)
            print(f"profile written to {args.profile}")
    finally:
        for running in (service, backends):
            if running is not None:
                running.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
