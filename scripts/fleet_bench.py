"""How much Redis work one request costs, and so how far one Redis carries a fleet.

    python scripts/fleet_bench.py [--quick] [--only state,proxy,cluster] [--servers 2,16,64,256]
                                  [--counters]

Parts (each starts and stops its own processes, on 127.0.0.1 only, every wait bounded):
  state    the fleet-state layer alone: the real ``RedisFleetState`` acquire and release with
           the real scripts, from simulated workers (one ``RedisFleetState`` each, with its own
           connections, driven by greenlets) against one redis-server, no HTTP; for each
           backend size: acquires per second, Redis CPU per acquire and the fleet ceiling that
           implies (one Redis core / CPU per acquire)
  proxy    through ``geoproxy run --workers 2`` (balance leastconn, cookie insert), one nginx
           answering 1 KB on every server port, ``wrk -t1 -c32``: Redis CPU per proxied request;
           with ``--counters``, also with a rate limit (``track-sc0`` + ``http_req_rate(10s)``,
           never reached) tracking one client (``src``), and tracking a new key per request
           (``req.hdr(x-client)``, set by a wrk script): what the fleet-wide stick counters
           cost Redis
  cluster  the state part against a 3-master Redis Cluster with three backends (one per
           shard): each shard's ceiling, and the fleet's, which is their sum
  leastconn  four servers behind balance leastconn, one answering in 80 ms and three in 4 ms,
           under wrk -c32: the slow server's share of the requests through HAProxy (1 thread)
           and through geoproxy (2 workers), in the same run
Redis CPU is ``used_cpu_user + used_cpu_sys`` from ``INFO cpu`` before and after a run, divided
by the requests (or acquires) of that run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bench_services as services
from bench_load import run_wrk

from geoproxy.demo.fleet import wait_for_port
from geoproxy.runtime.embedded_redis import EmbeddedRedis, stop_child

ROOT = services.ROOT
CONNECTIONS = 32


@dataclass(frozen=True, slots=True)
class Measure:
    """One measured run: what was done, how fast, and what it cost Redis."""

    part: str
    servers: int
    operations: int
    seconds: float
    redis_cpu_s: float
    note: str = ""
    # with --commands: per Redis command, (calls, microseconds) during the run (INFO
    # commandstats; a transaction's commands count both alone and within EXEC)
    commands: tuple[tuple[str, int, int], ...] = ()

    @property
    def per_second(self) -> float:
        return self.operations / self.seconds if self.seconds else 0.0

    @property
    def redis_us(self) -> float:
        return self.redis_cpu_s * 1e6 / self.operations if self.operations else 0.0

    @property
    def ceiling(self) -> float:
        """Operations per second one Redis core would carry at this cost."""
        return 1e6 / self.redis_us if self.redis_us else 0.0


def redis_cpu_seconds(url: str) -> float:
    """``used_cpu_user + used_cpu_sys`` of the Redis at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def command_stats(url: str) -> dict[str, tuple[int, int]]:
    """Every command's (calls, microseconds) so far, from ``INFO commandstats``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for name, v in info.items()}


def command_delta(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> tuple[tuple[str, int, int], ...]:
    """What each command added between two ``command_stats``, the dearest first."""
    rows = []
    for name, (calls, usec) in after.items():
        was_calls, was_usec = before.get(name, (0, 0))
        if calls > was_calls:
            rows.append((name, calls - was_calls, usec - was_usec))
    return tuple(sorted(rows, key=lambda row: -row[2]))


# -- the state layer alone ---------------------------------------------------------------------

SIM_WORKERS, SIM_GREENLETS = 4, 16  # simulated workers, and requests each keeps in flight


def run_workers(
    urls: Sequence[str], url: str, servers: int, backends: Sequence[str], seconds: float
) -> tuple[int, float, list[float]]:
    """Run fleet_bench_workers.py against ``url``; returns the acquires, the seconds, and the
    CPU seconds each Redis of ``urls`` spent meanwhile."""
    argv = [sys.executable, str(ROOT / "scripts" / "fleet_bench_workers.py"), url]
    argv += [str(servers), ",".join(backends), str(SIM_WORKERS), str(SIM_GREENLETS)]
    argv.append(str(seconds))
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert child.stdin is not None and child.stdout is not None
    try:
        child.stdout.readline()  # ready: registered, warmed up
        before = [redis_cpu_seconds(u) for u in urls]
        child.stdin.write(b"go\n")
        child.stdin.flush()
        result = json.loads(child.stdout.readline())
        cpu = [redis_cpu_seconds(u) - b for u, b in zip(urls, before, strict=True)]
        child.stdin.write(b"stop\n")
        child.stdin.flush()
        child.wait(timeout=30)
    finally:
        stop_child(child, 5.0)
    return int(result["acquires"]), float(result["seconds"]), cpu


def measure_state(servers: int, seconds: float) -> Measure:
    redis = EmbeddedRedis().start()
    try:
        acquires, elapsed, (cpu,) = run_workers([redis.url], redis.url, servers, ["b"], seconds)
    finally:
        redis.stop()
    note = f"{SIM_WORKERS} workers x {SIM_GREENLETS} requests in flight"
    return Measure("state", servers, acquires, elapsed, cpu, note)


# -- a Redis Cluster ---------------------------------------------------------------------------


def start_cluster(work: Path, masters: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    """``masters`` redis-server processes made one Cluster (no replicas)."""
    binary = services.find_binary("redis-server")
    cli = services.find_binary("redis-cli")
    if binary is None or cli is None:
        raise services.ServiceError("redis-server and redis-cli are needed for a Cluster")
    processes: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for _ in range(masters):
            port, bus = services.free_tcp_port(), services.free_tcp_port()  # client, bus ports
            node = work / f"cluster-{port}"
            node.mkdir()
            argv = [binary, "--port", str(port), "--bind", "127.0.0.1"]
            argv += ["--cluster-enabled", "yes", "--cluster-port", str(bus)]
            argv += ["--cluster-config-file", str(node / "nodes.conf"), "--save", "", "--dir"]
            argv += [str(node), "--appendonly", "no", "--daemonize", "no"]
            processes.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            ports.append(port)
        for port in ports:
            wait_for_port(services.HOST, port, 10.0)
        nodes = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    [cli, "-p", str(p), "cluster", "info"], capture_output=True, text=True,
                    timeout=5,
                ).stdout
                for p in ports
            ]
            if all("cluster_state:ok" in state for state in states):
                break
            time.sleep(0.2)
    except BaseException:
        for process in processes:
            stop_child(process, 5.0)
        raise
    return processes, ports


def backend_on(port: int) -> str:
    """A backend name whose keys (hash tag ``{name}``) live on the master at ``port``."""
    import redis
    from redis.crc import key_slot

    client = redis.Redis(host=services.HOST, port=port)
    try:
        ranges = [(int(low), int(high)) for low, high, *_ in client.cluster("SLOTS")
                  if int(_[0][1]) == port]
    finally:
        client.close()
    for i in range(1, 1000):
        slot = key_slot(f"gp:{{b{i}}}:x".encode())
        if any(low <= slot <= high for low, high in ranges):
            return f"b{i}"
    raise services.ServiceError(f"no backend name hashes to the node at port {port}")


def measure_cluster(work: Path, servers: int, seconds: float) -> list[Measure]:
    """Three backends, one per shard: each shard's cost per acquire, and the sum of ceilings."""
    processes, ports = start_cluster(work, 3)
    try:
        urls = [f"redis://127.0.0.1:{port}/0" for port in ports]
        url = f"redis+cluster://127.0.0.1:{ports[0]}"
        names = [backend_on(port) for port in ports]
        acquires, elapsed, cpu = run_workers(urls, url, servers, names, seconds)
    finally:
        for process in processes:
            stop_child(process, 5.0)
    shard = acquires / 3  # the three backends take equal shares (greenlets round-robin)
    measures = [
        Measure("cluster shard", servers, round(shard), elapsed, c, f"node :{port}")
        for port, c in zip(ports, cpu, strict=True)
    ]
    ceiling = sum(m.ceiling for m in measures)
    total = Measure("cluster, 3 shards", servers, acquires, elapsed, sum(cpu))
    return [*measures, total, Measure("cluster ceiling", servers, 0, 0, 0,
                                      f"{ceiling:,.0f}/s: the shards' ceilings added")]


# -- through geoproxy run ---------------------------------------------------------------------


def fleet_config(port: int, backend_ports: Sequence[int], counters: str = "") -> str:
    """The issue's configuration: leastconn and an inserted cookie over every port; with
    ``counters`` (``src`` or ``distinct``), a rate limit tracking that key."""
    lines = ""
    if counters == "src":
        lines = services.COUNTER_RULES
    elif counters:
        lines = services.COUNTER_RULES.replace("track-sc0 src", "track-sc0 req.hdr(x-client)")
    return services.proxy_config(port, backend_ports, frontend_lines=lines)


# a new X-Client per request: every request tracks an entry of its own
DISTINCT_KEYS = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, {["X-Client"] = counter .. "-" .. math.random(1000000000)})
end
"""


def measure_proxy(work: Path, servers: int, duration: float, warmup: float,
                  counters: str = "", commands: bool = False) -> Measure:
    ports = [services.free_tcp_port() for _ in range(servers)]
    nginx = services.start_nginx(work, ports)
    proxy: services.Service | None = None
    try:
        port = services.free_tcp_port()
        proxy = services.Service("geoproxy", f"http://{services.HOST}:{port}/")
        redis = services.start_redis(proxy)
        conf = work / f"fleet-{servers}{counters}.cfg"
        conf.write_text(fleet_config(port, ports, counters))
        script = None
        if counters == "distinct":
            script_path = work / "distinct.lua"
            script_path.write_text(DISTINCT_KEYS)
            script = str(script_path)
        log = work / f"geoproxy-{servers}{counters}.log"
        argv = [sys.executable, "-m", "geoproxy", "run", "-c", str(conf)]
        argv += ["--workers", "2", "--redis", redis.url]
        services.spawn(proxy, argv, log)
        services.wait_ready(proxy, port, log)
        run_wrk(proxy.url, CONNECTIONS, warmup, script)
        stats_before = command_stats(redis.url) if commands else {}
        before = redis_cpu_seconds(redis.url)
        started = time.monotonic()
        result = run_wrk(proxy.url, CONNECTIONS, duration, script)
        seconds = time.monotonic() - started
        cpu = redis_cpu_seconds(redis.url) - before
        spent = command_delta(stats_before, command_stats(redis.url)) if commands else ()
        note = f"{result.rps:,.0f} req/s"
        if result.non_2xx or result.errors:
            note += f", {result.non_2xx} non-2xx, {result.errors} socket errors"
        part = "proxy" if not counters else f"proxy+sc {counters}"
        return Measure(part, servers, result.requests, seconds, cpu, note, spent)
    finally:
        if proxy is not None:
            proxy.stop()
        nginx.stop()


# -- leastconn against HAProxy ----------------------------------------------------------------

SLOW_MS, FAST_MS = 80, 4


@dataclass(frozen=True, slots=True)
class Share:
    """The slow server's share of one proxy's requests."""

    proxy: str
    requests: int
    slow: int

    @property
    def share(self) -> float:
        return self.slow / self.requests if self.requests else 0.0


def served_counts(ports: Sequence[int]) -> list[int]:
    counts = []
    for port in ports:
        with urllib.request.urlopen(f"http://{services.HOST}:{port}/__count", timeout=5) as answer:
            counts.append(int(answer.read()))
    return counts


def measure_leastconn(work: Path, duration: float, warmup: float) -> list[Share]:
    """The slow server's share through HAProxy and through geoproxy (issue: within 1.5x)."""
    ports = [services.free_tcp_port() for _ in range(4)]
    servers = services.Service("delayed servers", "")
    shares = []
    try:
        for port, delay in zip(ports, (SLOW_MS, FAST_MS, FAST_MS, FAST_MS), strict=True):
            log = work / f"delayed-{port}.log"
            services.spawn(
                servers,
                [sys.executable, str(ROOT / "scripts" / "bench_apps" / "delayed.py"), str(port),
                 str(delay)],
                log,
            )
            wait_for_port(services.HOST, port, 10.0)
        for name in ("haproxy", "geoproxy"):
            port = services.free_tcp_port()
            if name == "haproxy":
                if services.find_binary("haproxy") is None:
                    continue
                proxy = services.start_haproxy(work, port, ports)
            else:
                proxy = services.start_geoproxy(work, port, ports)
            try:
                run_wrk(proxy.url, CONNECTIONS, warmup)
                before = served_counts(ports)
                run_wrk(proxy.url, CONNECTIONS, duration)
                after = served_counts(ports)
            finally:
                proxy.stop()
            done = [b - a for a, b in zip(before, after, strict=True)]
            shares.append(Share(name, sum(done), done[0]))
    finally:
        servers.stop()
    return shares


def share_table(shares: Sequence[Share]) -> str:
    lines = [
        f"leastconn, one server at {SLOW_MS} ms and three at {FAST_MS} ms, wrk -c{CONNECTIONS}:",
        "",
        "| proxy | requests | to the slow server | share |",
        "|---|---:|---:|---:|",
    ]
    for share in shares:
        lines.append(
            f"| {share.proxy} | {share.requests:,} | {share.slow:,} | {share.share:.1%} |"
        )
    by_name = {share.proxy: share for share in shares}
    if "haproxy" in by_name and "geoproxy" in by_name and by_name["haproxy"].share:
        ratio = by_name["geoproxy"].share / by_name["haproxy"].share
        lines += ["", f"geoproxy's share / HAProxy's: {ratio:.2f} (the target: at most 1.5)"]
    return "\n".join(lines)


# -- report -----------------------------------------------------------------------------------


def table(measures: Sequence[Measure]) -> str:
    lines = [
        "| part | servers | operations/s | Redis CPU µs per operation | one Redis core carries |"
        " note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for m in measures:
        lines.append(
            f"| {m.part} | {m.servers} | {m.per_second:,.0f} | {m.redis_us:.1f} "
            f"| {m.ceiling:,.0f}/s | {m.note} |"
        )
    return "\n".join(lines)


def command_table(measures: Sequence[Measure], top: int = 8) -> str:
    """Per proxied request, the commands that cost Redis most (``--commands``)."""
    lines = []
    for m in measures:
        if not m.commands or not m.operations:
            continue
        lines += [
            f"{m.part}, {m.servers} servers: Redis commands per request (INFO commandstats;"
            " EXEC's time includes its commands')",
            "",
            "| command | calls per request | µs per request | µs per call |",
            "|---|---:|---:|---:|",
        ]
        for name, calls, usec in m.commands[:top]:
            lines.append(f"| {name} | {calls / m.operations:.3f} | {usec / m.operations:.2f} "
                         f"| {usec / calls:.1f} |")
        lines.append("")
    return "\n".join(lines)


def header() -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
        cwd=ROOT,
    ).stdout.strip()
    return f"geoproxy fleet benchmark, {now}, nproc {os.cpu_count()}, commit {commit or '?'}"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--only", default="state,proxy,cluster,leastconn")
    parser.add_argument("--servers", default="", help="backend sizes (default per part)")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--counters", action="store_true",
                        help="proxy part: also with a stick-counter rate limit")
    parser.add_argument("--commands", action="store_true",
                        help="proxy part: also what each Redis command costs per request")
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    args.sizes = [int(n) for n in args.servers.split(",") if n.strip()]
    return args


def main() -> int:
    args = parse_args()
    duration, warmup = (3.0, 1.0) if args.quick else (8.0, 2.0)
    work = Path(tempfile.mkdtemp(prefix="geoproxy-fleet-bench-"))
    measures: list[Measure] = []
    shares: list[Share] = []
    try:
        if "state" in args.parts:
            for servers in args.sizes or [2, 16, 64, 256]:
                print(f"state, {servers} servers", file=sys.stderr)
                measures.append(measure_state(servers, duration))
        if "cluster" in args.parts:
            print("cluster, 3 shards", file=sys.stderr)
            measures.extend(measure_cluster(work, 2, duration))
        if "proxy" in args.parts:
            for servers in args.sizes or [2, 64]:
                print(f"proxy, {servers} servers", file=sys.stderr)
                measures.append(measure_proxy(work, servers, duration, warmup,
                                              commands=args.commands))
                for counters in ("src", "distinct") if args.counters else ():
                    print(f"proxy, {servers} servers, stick counters ({counters})",
                          file=sys.stderr)
                    measures.append(measure_proxy(work, servers, duration, warmup, counters))
        if "leastconn" in args.parts:
            print("leastconn, a slow server among fast ones", file=sys.stderr)
            shares = measure_leastconn(work, duration, warmup)
    finally:
        if args.keep_logs:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(header())
    print()
    if measures:
        print(table(measures))
        print()
        if args.commands:
            print(command_table(measures))
    if shares:
        print(share_table(shares))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
