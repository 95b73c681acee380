"""haproxy 2.6 itself as a real process, the oracle of the differential tests: the same
configuration text geoproxy runs, started with ``haproxy -db -f CFG`` (foreground, no fork),
waited for on its binds (bounded), stopped by pid."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.ports import wait_for_port
from tests.support.processes import ManagedProcess, ProcessRegistry
from tests.support.proxy_process import bind_addresses
from tests.support.tools import tool_missing


def haproxy_binary() -> str:
    """The path of haproxy, or skip (fail under .ci/run) when it is not installed."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if found is None:
        tool_missing("haproxy is not installed")
    return found


def start_haproxy(registry: ProcessRegistry, config_text: str, work_dir: Path,
                  timeout: float = 10.0, *, outlive_test: bool = False) -> ManagedProcess:
    """Run haproxy on ``config_text`` (written to ``work_dir/haproxy.cfg``) and wait until every
    bind accepts connections; on failure it is stopped and its output shown."""
    binary = haproxy_binary()
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / "haproxy.cfg"
    path.write_text(config_text)
    process = registry.start("haproxy", [binary, "-db", "-f", str(path)], work_dir,
                             session=outlive_test)
    try:
        for host, port in bind_addresses(config_text):
            wait_for_port(host, port, timeout, process.is_running)
    except (TimeoutError, ChildProcessError) as exc:
        process.stop()
        raise RuntimeError(f"haproxy did not start: {exc}\n{process.output()}") from exc
    return process
