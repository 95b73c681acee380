"""geoproxy's fault table: steady traffic through two hosts while Redis, a worker, a server and a
whole host are killed in turn; per phase, what the requests came to.

    python scripts/fault_table.py [--phase-seconds 8] [--clients 8] [--keep-logs]

Everything runs on 127.0.0.1 and is started here, on free ports: a redis-server, three demo
backends (s1, s2, s3), two ``geoproxy run`` hosts A and B (two gevent workers each, the same
configuration: leastconn, ``option httpchk``, ``check inter 200ms``, ``observe layer7
error-limit 2 on-error mark-down``, ``retries 2``, ``option redispatch``). Eight client threads
send ``GET /slow?ms=20`` (the server answers after 20 ms, so requests are in flight there) to A
and B in turn on keep-alive connections, 10 ms apart each, from the first phase to the last.
The phases, each ``--phase-seconds`` long, the fault 1.5 s in:

  baseline                  nothing happens
  Redis killed              SIGKILL to redis-server; it stays away for this phase
  Redis back, empty         a new redis-server on the same port, with no data
  worker of host A killed   SIGKILL to one gunicorn worker of A (gunicorn starts another)
  server s3 killed          SIGKILL to the backend s3 (it stays dead)
  a whole host killed       SIGKILL to the master and both workers of the host that holds
                            the most check leases (A on a tie), at once

What counts (tests/support/failover_traffic.py says it in full):
  2xx, 5xx  a status line and the whole body
  cut       a status line, then the body ended early (a server died mid-response)
  lost      no status line at all: the connection died, or timed out, after the request was
            written, or no host accepted a connection. A request is never sent twice once a
            byte of it was written.
  Failover: a client that cannot OPEN a connection to one host (refused: that host is dead) sends
  that request to the other host, as a client given two addresses does; it counts once. An idle
  keep-alive connection that the host closed is noticed before the request is written (as
  urllib3 does) and replaced: no request is written on it.

Prints a Markdown table (phase | sent | 2xx | 5xx | cut | lost | notes) with the command line,
the date, ``nproc`` and the commit. Every process is stopped by pid at the end; every wait is
bounded. Needs redis-server 7 on the PATH.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.fault_drill import markdown_table, run_drill  # noqa: E402
from tests.support.fault_fleet import DrillSettings, FaultFleet  # noqa: E402
from tests.support.processes import ProcessRegistry  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-seconds", type=float, default=8.0, help="length of a phase")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    fault_after = DrillSettings().fault_after
    if args.phase_seconds <= fault_after:
        parser.error(f"--phase-seconds must be longer than {fault_after:g}")
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    return args


def commit() -> str:
    try:
        argv = ["git", "rev-parse", "--short", "HEAD"]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def main() -> int:
    args = parse_args()
    settings = DrillSettings(phase_seconds=args.phase_seconds, clients=args.clients)
    work = Path(tempfile.mkdtemp(prefix="geoproxy-faults-"))
    registry = ProcessRegistry()
    fleet = FaultFleet(registry, work, settings)
    try:
        fleet.start()
        phases = run_drill(fleet, lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        fleet.stop()
        registry.stop_all()
        if args.keep_logs:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    command = " ".join(shlex.quote(part) for part in [".venv/bin/python", *sys.argv])
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"`{command}`, {today}, nproc = {len(os.sched_getaffinity(0))}, commit {commit()}:\n")
    print(markdown_table(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
