"""Simulated workers for scripts/fleet_bench.py: the real fleet state, no HTTP.

    python scripts/fleet_bench_workers.py URL SERVERS NAMES WORKERS GREENLETS SECONDS

One process, gevent as in a gunicorn worker (monkey-patched, with geoproxy's watchdog), runs
WORKERS ``RedisFleetState`` instances (each with its own connections, heartbeat and flusher),
each driven by GREENLETS greenlets that take a lease with the real leastconn policy over the
backends NAMES (comma-separated) of SERVERS servers each, hold it a moment, and give it back.
Prints one JSON line when ready, then (after a line on stdin) one with the acquires done and
the seconds measured; stops after another line on stdin.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geoproxy import watchdog  # noqa: E402
from geoproxy.balance.leastconn import LeastConn  # noqa: E402
from geoproxy.balance.rank import eligible  # noqa: E402
from geoproxy.config.model import Backend, Location, Server  # noqa: E402
from geoproxy.state.redis_store import RedisFleetState  # noqa: E402

HOLD = 0.002  # seconds a lease is held: requests overlap, as behind a real proxy
HERE = Location("fleet-bench", 1)


def backend(name: str, servers: int) -> Backend:
    return Backend(
        name=name,
        location=HERE,
        servers=tuple(
            Server(name=f"s{i}", host="127.0.0.1", port=10000 + i, location=HERE)
            for i in range(1, servers + 1)
        ),
    )


def drive(fleet: RedisFleetState, name: str, until: float, done: list[int]) -> None:
    policy = LeastConn()
    cached: tuple[object, tuple] = (None, ())  # type: ignore[type-arg]
    while time.monotonic() < until:
        view = fleet.view(name)
        if cached[0] is not view:
            cached = (view, eligible(view, False))
        lease = fleet.acquire(name, policy.rank(cached[1], None))
        if lease is None:
            gevent.sleep(HOLD)
            continue
        gevent.sleep(HOLD)
        fleet.release(lease)
        done[0] += 1


def main() -> int:
    url, servers, names, workers, greenlets, seconds = sys.argv[1:7]
    config = [backend(name, int(servers)) for name in names.split(",")]
    watchdog.start()
    master = RedisFleetState(url, "fleet-bench-master")
    master.register(config)
    fleets = []
    for i in range(int(workers)):
        fleet = RedisFleetState(url, f"fleet-bench:{i}")
        fleet.attach(config)
        fleet.start()
        fleets.append(fleet)
    warm = time.monotonic() + 1.0
    done = [0]
    jobs = [
        gevent.spawn(drive, fleet, config[g % len(config)].name, warm, done)
        for fleet in fleets
        for g in range(int(greenlets))
    ]
    gevent.joinall(jobs, timeout=30)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the parent reads Redis's CPU, then says go
    done = [0]
    started = time.monotonic()
    until = started + float(seconds)
    jobs = [
        gevent.spawn(drive, fleet, config[g % len(config)].name, until, done)
        for fleet in fleets
        for g in range(int(greenlets))
    ]
    gevent.joinall(jobs, timeout=float(seconds) + 30)
    elapsed = time.monotonic() - started
    print(json.dumps({"acquires": done[0], "seconds": elapsed}), flush=True)
    sys.stdin.readline()  # the parent reads Redis's CPU again, then lets us stop
    for fleet in fleets:
        fleet.stop()
        fleet.close()
    master.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
