"""Fixtures of the reliability suite, its results file, and the run-wide secret check.

Every test here carries `@pytest.mark.case(area, case, outcome)`: the row it
fills in docs/reliability.md. With CREDD_RELIABILITY_JSON set, each test's
case, node id and result are written there as JSON (report.py turns them
into the table).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relsupport import WATCH, Box, RecordingSts

RESULTS_ENV = "CREDD_RELIABILITY_JSON"
_results: dict[str, dict[str, Any]] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Register the `case` marker (pytest runs with --strict-markers)."""
    config.addinivalue_line(
        "markers", "case(area, case, outcome): the reliability table row a test pins"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember each reliability test's outcome (a failed setup or teardown fails it)."""
    if "tests/reliability/" not in report.nodeid.replace(os.sep, "/"):
        return
    row = _results.setdefault(report.nodeid, {"nodeid": report.nodeid, "outcome": "not run"})
    if report.failed:
        row["outcome"] = "failed"
    elif report.skipped and row["outcome"] != "failed":
        row["outcome"] = "skipped"
        row["reason"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    elif report.when == "call" and row["outcome"] == "not run":
        row["outcome"] = "passed"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Note each test's case marker and docstring for the report."""
    for item in items:
        marker = item.get_closest_marker("case")
        if marker is None or not isinstance(item, pytest.Function):
            continue
        area, case, outcome = marker.args
        doc = (item.function.__doc__ or "").strip().split("\n\n")[0]
        _results.setdefault(item.nodeid, {"nodeid": item.nodeid, "outcome": "not run"}).update(
            {"area": area, "case": case, "expected": outcome, "doc": " ".join(doc.split())}
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write the results file when asked to."""
    target = os.environ.get(RESULTS_ENV)
    if target and _results:
        rows = [r for r in _results.values() if "case" in r]
        Path(target).write_text(json.dumps(rows, indent=2) + "\n")


@pytest.fixture(scope="session", autouse=True)
def no_secret_anywhere() -> Iterator[None]:
    """After the whole suite: no secret, token or code in any log, status or error it saw."""
    yield
    leaks = WATCH.leaks()
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


@pytest.fixture
def sts() -> Iterator[RecordingSts]:
    """The fault-injecting STS double, remembering what it issued for the leak check."""
    with RecordingSts() as server:
        yield server
    WATCH.secret(*server.issued_secrets)


@pytest.fixture
def make_box(tmp_path: Path, sts: RecordingSts) -> Iterator[Callable[..., Box]]:
    """Build sandboxes on the STS double; every one is closed (and its log checked) after."""
    boxes: list[Box] = []

    def make(**kwargs: Any) -> Box:
        kwargs.setdefault("sts_url", sts.url)
        box = Box(tmp_path / f"box{len(boxes)}", **kwargs)
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.close()
