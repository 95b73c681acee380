"""Child processes for tests: output to a log file, stopped by pid, never left behind.

Rules:
- Every process a test starts goes through a ``ProcessRegistry``; its output (stdout and stderr)
  goes to a log file in the test's temporary directory.
- Stopping is by pid: SIGTERM, a bounded wait, then SIGKILL.
- ``REGISTRY`` is the suite's registry: conftest stops, after each test, what the test started
  (even when it crashed); session-scoped processes are stopped at the end of the session; an
  ``atexit`` hook stops anything still running if pytest itself dies early.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geoproxy.runtime.embedded_redis import stop_child

ROOT = Path(__file__).resolve().parents[2]


@dataclass(eq=False)
class ManagedProcess:
    """A process started for a test."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    session: bool = False
    registry: ProcessRegistry | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """Everything it wrote so far."""
        return self.log_path.read_text("utf-8", "replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, timeout: float) -> None:
        """Return once ``text`` appears in its output; raise (with the output) after
        ``timeout`` seconds or as soon as the process exits without writing it."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.is_running() and text not in self.output():
                raise ChildProcessError(
                    f"{self.name} exited ({self.process.returncode}) "
                    f"without writing {text!r}:\n{self.output()}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name} did not write {text!r} in {timeout:g}s:\n{self.output()}"
                )
            time.sleep(0.02)

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, up to ``grace`` seconds, then SIGKILL. Returns the exit status."""
        status = stop_child(self.process, grace)
        if self.registry is not None:
            self.registry.forget(self)
        return status


class ProcessRegistry:
    """Every process started through it, until it is stopped."""

    def __init__(self) -> None:
        self._running: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        log_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        session: bool = False,
    ) -> ManagedProcess:
        """Start ``argv`` from the repository root, with this checkout first on PYTHONPATH
        (so ``python -m geoproxy...`` runs the code under test), output to
        ``log_dir/NAME.log``. ``session`` processes outlive the test that started them."""
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}.log"
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), child_env.get("PYTHONPATH", "")) if p
        )
        child_env.setdefault("PYTHONUNBUFFERED", "1")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=child_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        managed = ManagedProcess(name, list(argv), process, log_path, session, self)
        self._running.append(managed)
        return managed

    def forget(self, managed: ManagedProcess) -> None:
        if managed in self._running:
            self._running.remove(managed)

    def test_processes(self) -> list[ManagedProcess]:
        """Those not started for the whole session."""
        return [managed for managed in self._running if not managed.session]

    def stop_test_processes(self) -> list[ManagedProcess]:
        """Stop what tests left running; returns them (a fixture that forgot to stop its
        process is a defect worth seeing)."""
        left = self.test_processes()
        for managed in reversed(left):
            managed.stop()
        return left

    def stop_all(self) -> None:
        for managed in reversed(list(self._running)):
            managed.stop()


REGISTRY = ProcessRegistry()
atexit.register(REGISTRY.stop_all)
