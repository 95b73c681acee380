"""How fast a change of routing state reaches every worker of a fleet (issue 16), and what it
costs Redis: the figure the README's fleet section states.

Set-up (as the issue measured it): one Redis, two hosts of ``--workers`` workers each, s1 and s2
behind roundrobin; each worker's keep-alive connection sends a request every 5 ms. ``--changes``
times, ``redis-cli HSET 'gp:{app}:srv:s1' admin maint``, then ``admin ready``; for each change,
the time until no worker sent to s1 any more (maint), and until every worker had sent to s1
again (ready: this includes waiting for roundrobin's turn, a request or two). Prints p50, p99
and the worst of each, with the Redis CPU the fleet used while idle (no change, no traffic)
and per change.

    python scripts/convergence_bench.py [--changes 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.fleet_harness import Fleet, wait_until  # noqa: E402
from tests.e2e.test_convergence import CONFIG, S1  # noqa: E402
from tests.support.convergence import Traffic, brought_back, took_away  # noqa: E402
from tests.support.processes import ProcessRegistry  # noqa: E402

SETTLE = 0.4  # seconds of traffic after each change


def _redis_cpu(fleet: Fleet) -> float:
    info = fleet.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    registry = ProcessRegistry()
    with tempfile.TemporaryDirectory(prefix="convergence-") as directory:
        fleet = Fleet(registry, Path(directory))
        try:
            fleet.start_backends(["s1", "s2"])
            fleet.start_hosts(CONFIG, count=2, workers=args.workers)
            wait_until(lambda: fleet.oper("s1") == "up", 10, "s1 is UP")
            lines = [line for host in fleet.hosts for line in host.worker_lines()]
            gone: list[float] = []
            back: list[float] = []
            with Traffic(lines) as traffic:
                wait_until(lambda: len(traffic.samples) >= 40, 5, "traffic flows")
                for _ in range(args.changes):
                    written = time.monotonic()
                    fleet.redis.hset(S1, "admin", "maint")
                    time.sleep(SETTLE)
                    restored = time.monotonic()
                    fleet.redis.hset(S1, "admin", "ready")
                    time.sleep(SETTLE)
                    gone.append(took_away(traffic, "s1", written, restored))
                    back.append(brought_back(traffic, "s1", restored, time.monotonic()))
            for line in lines:
                line.close()
            if traffic.errors:
                raise SystemExit(f"requests failed: {traffic.errors}")
            workers = 2 * args.workers
            time.sleep(1.0)  # the last statistics flushed
            idle_before = _redis_cpu(fleet)
            time.sleep(5.0)
            idle = (_redis_cpu(fleet) - idle_before) / 5.0
            before = _redis_cpu(fleet)
            for state in ("maint", "ready") * 50:
                fleet.redis.hset(S1, "admin", state)
                time.sleep(0.05)
            per_change = (_redis_cpu(fleet) - before - idle * 5.0) / 100
        finally:
            fleet.stop()
            registry.stop_all()
    print(f"convergence over {args.changes} changes each way, 2 hosts x {args.workers} "
          f"workers, a request every 5 ms per worker:")
    for name, values in (("maint (no worker sends to s1)", gone),
                         ("ready (every worker sent to s1)", back)):
        print(f"  {name}: p50 {statistics.median(values) * 1000:.1f} ms, "
              f"p99 {_percentile(values, 0.99) * 1000:.1f} ms, "
              f"max {max(values) * 1000:.1f} ms")
    print(f"Redis CPU while idle: {idle * 1e6:.0f} us/s for the fleet ({workers} workers)")
    print(f"Redis CPU per change (the write, {workers} messages, {workers} reloads): "
          f"{per_change * 1e6:.0f} us")


if __name__ == "__main__":
    main()
