"""What a test does when a tool it drives (haproxy, chromium, redis-cli...) is not installed.

On a developer's machine the test is skipped, with the reason. Under ``.ci/run``, which installs
every such tool first and sets ``GEOPROXY_REQUIRE_TOOLS``, a missing tool fails the run instead:
a skip there would hide a test that never ran behind a green result.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_TOOLS_ENV = "GEOPROXY_REQUIRE_TOOLS"


def tool_missing(reason: str) -> NoReturn:
    """Skip the calling test (or module) for ``reason``; fail when tools are required."""
    if os.environ.get(REQUIRE_TOOLS_ENV):
        pytest.fail(f"{reason} ({REQUIRE_TOOLS_ENV} is set: this run must have it)", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
