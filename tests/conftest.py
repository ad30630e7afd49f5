from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from loravet.testing.hub_server import HubServer, client_env

# LORAVET_SHARED points elsewhere (e.g. a folder that does not exist, to see what a plain clone skips)
SHARED = Path(os.environ.get("LORAVET_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
STRICT = os.environ.get("LORAVET_STRICT") == "1"
"""LORAVET_STRICT=1 (set by .ci/run): a test that would skip (../shared absent, no chromium, a missing extra)
fails instead, so that CI cannot pass while checking less than it claims."""


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"LORAVET_STRICT=1 turns this skip into a failure: {reason}"


# The local hub, for the test modules that define a `repos` fixture (the folder of repositories it serves):
# test_hub_online.py and test_scan.py.
@pytest.fixture()
def hub(repos: Path) -> Iterator[HubServer]:
    with HubServer(repos, lifetime=300) as server:
        yield server


@pytest.fixture()
def env(hub: HubServer, tmp_path: Path) -> dict[str, str]:
    # opted in to the adapters' own values (the default is header-only), so reports can equal a local copy
    return client_env(hub.url, str(tmp_path / "hf"))
