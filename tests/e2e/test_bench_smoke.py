"""`make bench` still runs: bench/run.py in its tiny quick mode, end to end.

No timing is asserted (the quick sizes make every figure meaningless); this pins
only that each measurement completes against the local STS and that the report
has a row for every target of issues 6 and 15, and the shortcuts' table.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "run.py"
ROWS = ("1a", "1b", "2a", "2b", "3a", "3b", "4a", "4b", "4c", "5", "6", "7", "8", "9")


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_quick_bench_writes_every_row(tmp_path: Path) -> None:
    """The quick run completes and its RESULTS.md has the machine, the floor and every target."""
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    assert "Quick smoke run" in report
    assert "## Machine" in report and "Python:" in report and "boto3" in report
    for row in ROWS:
        assert f"\n| {row} | " in report, f"row {row} missing from the report"
    for floor in ("python3 -c pass", "GetSessionToken round trip", "fsync of a 4 KiB file"):
        assert floor in report
    for swap in ("json", "argparse", "datetime"):
        assert f"\n| {swap} | " in report, f"shortcut {swap} missing from the report"
