"""maxconn and queues, fleet-wide: two geoproxy hosts (two workers each) sharing one Redis.

HAProxy configuration manual, section 5.2 "maxconn" (no more than this many concurrent
requests are sent to the server; the others wait in a queue), "maxqueue" (a server's queue
holds at most this many requests; once it is full, the next ones are redispatched to other
servers), section 4 "timeout queue" (a request that waited that long in a queue is answered
503), and queue.c's rule that queued requests are served in arrival order. The limit holds for
the whole fleet: the server itself counts what it has in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.fleet_harness import Fleet, request, running_fleet
from tests.support.backends import Answer
from tests.support.processes import ProcessRegistry

SLOW_MS = 300
QUEUE_TIMEOUT = 0.4

CONFIG = """\
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    use_backend tight if {{ hdr(x-backend) -i tight }}
    use_backend sticky if {{ hdr(x-backend) -i sticky }}
    default_backend app

backend app
    timeout queue 5s
    server s1 {s1} maxconn 1

backend tight
    timeout queue 400ms
    server s2 {s2} maxconn 1

backend sticky
    timeout queue 5s
    cookie SRV indirect
    server s3 {s3} cookie s3 maxconn 1 maxqueue 1
    server s4 {s4} cookie s4
"""


@pytest.fixture(scope="module")
def fleet(
    process_registry: ProcessRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    with running_fleet(process_registry, tmp_path_factory) as started:
        started.start_backends(["s1", "s2", "s3", "s4"])
        started.start_hosts(CONFIG, count=2, workers=2)
        yield started


@dataclass(slots=True)
class Sent:
    """One request sent in the background: when it left, its answer, when that came."""

    index: int
    port: int
    path: str
    headers: dict[str, str]
    sent_at: float = 0.0
    answer: Answer | None = None
    answered_at: float = 0.0
    error: BaseException | None = None

    def run(self) -> None:
        self.sent_at = time.monotonic()
        try:
            self.answer = request(self.port, self.path, headers=self.headers, timeout=15)
        except BaseException as error:  # reported by the test, with the others
            self.error = error
        self.answered_at = time.monotonic()


def start_staggered(requests: list[Sent], gap: float) -> list[threading.Thread]:
    """Send ``requests`` in order, ``gap`` seconds apart, each from its own thread."""
    threads = [threading.Thread(target=sent.run, daemon=True) for sent in requests]
    for thread in threads:
        thread.start()
        time.sleep(gap)
    return threads


def wait_answered(requests: list[Sent], threads: list[threading.Thread]) -> None:
    """Return once every answer is in (bounded by the client timeout)."""
    for thread in threads:
        thread.join(timeout=20)
    for sent in requests:
        assert sent.error is None, f"request {sent.index}: {sent.error!r}"
        assert sent.answer is not None


def send_staggered(requests: list[Sent], gap: float) -> None:
    wait_answered(requests, start_staggered(requests, gap))


def test_maxconn_1_across_two_hosts_serves_5_concurrent_requests_one_at_a_time_in_arrival_order(
    fleet: Fleet,
) -> None:
    s1 = fleet.backends["s1"]
    s1.reset_stats()
    ports = fleet.ports
    sent = [Sent(i, ports[i % 2], f"/slow?ms={SLOW_MS}", {}) for i in range(5)]
    send_staggered(sent, gap=0.1)
    assert [s.answer.status for s in sent if s.answer] == [200] * 5
    assert s1.stats()["max_in_flight"] == 1
    assert s1.stats()["requests"] == 5
    finished = sorted(sent, key=lambda s: s.answered_at)
    assert [s.index for s in finished] == [0, 1, 2, 3, 4], "served in arrival order"
    # one at a time: each answer comes at least one service time after the one before
    for before, after in zip(finished, finished[1:], strict=False):
        assert after.answered_at - before.answered_at >= SLOW_MS / 1000 * 0.8
    assert not fleet.redis.zcard("gp:{app}:queue"), "no ticket left behind"


def test_a_request_that_waits_past_timeout_queue_is_answered_503(fleet: Fleet) -> None:
    tight = {"X-Backend": "tight"}
    ports = fleet.ports
    holder = Sent(0, ports[0], "/slow?ms=1500", tight)
    waiter = Sent(1, ports[1], "/", tight)
    send_staggered([holder, waiter], gap=0.1)
    assert holder.answer is not None and holder.answer.status == 200
    assert waiter.answer is not None and waiter.answer.status == 503
    waited = waiter.answered_at - waiter.sent_at
    assert QUEUE_TIMEOUT * 0.9 <= waited <= QUEUE_TIMEOUT + 0.5, waited
    assert b"No server is available" in waiter.answer.body
    assert fleet.backends["s2"].stats()["max_in_flight"] == 1
    assert not fleet.redis.zcard("gp:{tight}:queue"), "the timed-out ticket left the queue"


def test_a_full_server_queue_sends_the_next_persistent_request_to_another_server(
    fleet: Fleet,
) -> None:
    to_s3 = {"X-Backend": "sticky", "Cookie": "SRV=s3"}
    ports = fleet.ports
    busy = Sent(0, ports[0], "/slow?ms=800", to_s3)  # takes s3's only slot
    queued = Sent(1, ports[1], "/slow?ms=10", to_s3)  # waits in s3's queue (maxqueue 1)
    overflow = Sent(2, ports[0], "/slow?ms=10", to_s3)  # s3's queue is full: balanced
    send_staggered([busy, queued, overflow], gap=0.1)
    served = [s.answer.header("X-Server") if s.answer else None for s in (busy, queued, overflow)]
    assert served == ["s3", "s3", "s4"]
    assert overflow.answered_at < busy.answered_at, "the overflow did not wait for s3"
    assert queued.answered_at >= busy.answered_at, "the queued one waited for s3's slot"
    assert fleet.backends["s3"].stats()["max_in_flight"] == 1


def test_geoproxy_state_shows_the_request_in_flight_and_the_ones_queued_behind_it(
    fleet: Fleet,
) -> None:
    ports = fleet.ports
    paths = ["/slow?ms=3000", "/slow?ms=10", "/slow?ms=10"]
    sent = [Sent(i, ports[i % 2], path, {}) for i, path in enumerate(paths)]
    threads = start_staggered(sent, gap=0.1)
    text, tables = fleet.state()
    wait_answered(sent, threads)
    assert "backend app (4 live workers, 2 queued in the backend)" in text
    row = tables["app"]["s1"]
    assert (row["inflight"], row["queued"]) == ("1", "0")
    assert [s.answer.status for s in sent if s.answer] == [200] * 3


def test_a_request_arriving_while_others_wait_queues_behind_them(fleet: Fleet) -> None:
    ports = fleet.ports
    holder = Sent(0, ports[0], "/slow?ms=600", {})
    waiters = [Sent(i, ports[i % 2], "/slow?ms=5", {}) for i in (1, 2)]
    first = start_staggered([holder, *waiters], gap=0.1)
    # newcomers keep arriving around the moment the holder's slot is given back
    time.sleep(max(holder.sent_at + 0.5 - time.monotonic(), 0))
    newcomers = [Sent(i, ports[i % 2], "/slow?ms=5", {}) for i in range(3, 63)]
    later = start_staggered(newcomers, gap=0.005)
    wait_answered([holder, *waiters, *newcomers], first + later)
    served_before_waiters = [
        n.index for n in newcomers if n.answered_at < max(w.answered_at for w in waiters)
    ]
    assert not served_before_waiters, "newcomers took slots while older requests waited"
    assert fleet.backends["s1"].stats()["max_in_flight"] == 1
