"""``geoproxy check``: report on a configuration file the way ``haproxy -c -f FILE`` does.

Output shape (HAProxy 2.6, without the process id HAProxy puts in brackets):

    [WARNING]  config : parsing [app.cfg:12] : ...       (stderr, one per warning)
    [ALERT]    config : parsing [app.cfg:14] : ...       (stderr, one per error; in file order,
                                                          mixed with the warnings)
    [ALERT]    config : Error(s) found in configuration file : app.cfg
    [ALERT]    config : Fatal errors found in configuration.
or
    Warnings were found.                                 (stdout, when there are warnings)
    Configuration file is valid                          (stdout)

The exit status is 0 when the file is valid (warnings allowed) and 1 otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TextIO

from geoproxy.config import load
from geoproxy.config.model import Diagnostic
from geoproxy.errors import ConfigError

WARNING = "[WARNING]  config : "
ALERT = "[ALERT]    config : "


def check(path: str, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Load ``path``, print every warning and error, and return the exit status (0 or 1)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        config = load(path)
    except ConfigError as exc:
        # in file order, warnings and errors interleaved, as HAProxy reports while it reads
        levelled = [(WARNING, w) for w in exc.warnings] + [(ALERT, e) for e in exc.errors]
        for prefix, diagnostic in sorted(levelled, key=lambda item: item[1].location.line):
            err.write(f"{prefix}{diagnostic}\n")
        err.write(f"{ALERT}Error(s) found in configuration file : {path}\n")
        err.write(f"{ALERT}Fatal errors found in configuration.\n")
        return 1
    _print(err, WARNING, config.warnings)
    if config.warnings:
        out.write("Warnings were found.\n")
    out.write("Configuration file is valid\n")
    return 0


def _print(stream: TextIO, prefix: str, diagnostics: Iterable[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        stream.write(f"{prefix}{diagnostic}\n")
