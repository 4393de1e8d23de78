"""Child processes of test_rel_crash.py: a writer that kills itself mid-write, and a reader.

    python crash_child.py write FILE STEP N   # N good updates, then SIGKILL itself at STEP
    python crash_child.py read FILE STOPFILE OUT  # parse FILE in a loop until STOPFILE exists

The writer is the real `CredentialsWriter`; only its OS calls are wrapped, so
the kill lands exactly at the step named. The reader parses with botocore's
own `raw_config_parse`, as every SDK does, and records what it saw.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

STEPS = (
    "before-temp-write",
    "partial-temp-write",
    "after-fsync",
    "before-replace",
    "after-replace",
)
# Enough keys that a partial file would lose some: the reader checks them all.
PAD_KEYS = 40


def section(counter: int) -> dict[str, str | None]:
    """The managed section of update number `counter`: every key carries the counter."""
    keys: dict[str, str | None] = {f"pad_{i:02d}": f"v{counter}-{i}" for i in range(PAD_KEYS)}
    keys["counter"] = str(counter)
    return keys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def write(path: Path, step: str, good: int) -> None:
    """Run `good` updates, then one more that is killed at `step`."""
    from credd.files.writer import CredentialsWriter

    armed = False

    def hooked_write(fd: int, data: bytes) -> int:
        if armed and step == "before-temp-write":
            _die()
        if armed and step == "partial-temp-write":
            os.write(fd, data[: len(data) // 2])
            _die()
        return os.write(fd, data)

    def hooked_fsync(fd: int) -> None:
        os.fsync(fd)
        if armed and step == "after-fsync":
            _die()

    def hooked_replace(src: Path, dst: Path) -> None:
        os.replace(src, dst)
        if armed and step == "after-replace":
            _die()

    def before_replace(_target: Path) -> None:
        if armed and step == "before-replace":
            _die()

    writer = CredentialsWriter(
        path,
        write=hooked_write,
        fsync=hooked_fsync,
        replace=hooked_replace,
        before_replace=before_replace,
    )
    start = int(writer.read().get("crashy", {}).get("counter", "0"))
    for n in range(start + 1, start + good + 1):
        writer.update({"crashy": section(n)})
    armed = True
    writer.update({"crashy": section(start + good + 1)})
    raise SystemExit("the armed step never came")


def read(path: Path, stop: Path, out: Path) -> None:
    """Parse `path` until `stop` exists; write {"reads", "bad": [...]} to `out`."""
    from botocore.configloader import raw_config_parse

    reads, bad = 0, []
    while not stop.exists():
        try:
            parsed = raw_config_parse(str(path), parse_subsections=False)
        except Exception as error:  # any failure to parse is the finding
            bad.append(f"{type(error).__name__}: {error}"[:200])
            continue
        reads += 1
        crashy = parsed.get("crashy", {})
        counter = crashy.get("counter")
        want = section(int(counter)) if counter and counter.isdigit() else {}
        if not want or crashy != want or parsed.get("tail", {}).get("end") != "yes":
            bad.append(f"partial or mixed read: {sorted(parsed)} counter={counter!r}")
    out.write_text(json.dumps({"reads": reads, "bad": bad[:20], "bad_count": len(bad)}))


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    else:
        read(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
