"""kill -9 in the middle of a credentials-file write, while other processes read the file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_child import PAD_KEYS, STEPS, section
from relsupport import Box, session_policy, wait_until
from support.daemon import LONG_TERM_KEY_ID, LONG_TERM_SECRET

CHILD = str(Path(__file__).with_name("crash_child.py"))
READERS = 2
KILLS_PER_STEP = 3
# Steps after which the temp file is still there for the next start to sweep.
LEAVES_TEMP = {"before-temp-write", "partial-temp-write", "after-fsync", "before-replace"}


def _initial_text() -> str:
    pads = "".join(f"{k} = {v}\n" for k, v in section(0).items())
    return (
        f"[default]\naws_access_key_id = {LONG_TERM_KEY_ID}\n"
        f"aws_secret_access_key = {LONG_TERM_SECRET}\n\n"
        f"[crashy]\n{pads}\n[tail]\nend = yes\n"
    )


@pytest.mark.slow
@pytest.mark.case(
    "Credentials file",
    "kill -9 at each step of a write, readers parsing in a loop",
    "every read parses to the old or the new file, never a partial one; "
    "the leftover temp file is swept when credd next starts",
)
@pytest.mark.parametrize("step", STEPS)
def test_kill_9_mid_write_never_shows_a_partial_file(make_box: type[Box], step: str) -> None:
    """A writer killed at `step` (3 times) while 2 processes parse the file with botocore:
    every read is a whole file (all 41 keys of one update, and the last section), the
    file parses afterwards, and the next `credd run` removes the crashed writes' temp files.
    """
    box = make_box(policy_text=session_policy(), credentials_text=_initial_text())
    stop = box.root / "stop-readers"
    outs = [box.root / f"reader-{i}.json" for i in range(READERS)]
    readers = [
        subprocess.Popen([sys.executable, CHILD, "read", str(box.credentials), str(stop), str(o)])
        for o in outs
    ]
    try:
        for good in range(1, KILLS_PER_STEP + 1):
            writer = subprocess.run(
                [sys.executable, CHILD, "write", str(box.credentials), step, str(good)],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert writer.returncode == -9, f"the writer was not killed at {step}: {writer}"
        # Let the readers see the final state a while too.
        time.sleep(0.2)
    finally:
        stop.touch()
        for reader in readers:
            reader.wait(30)
    results = [json.loads(o.read_text()) for o in outs]
    for result in results:
        assert result["bad_count"] == 0, result["bad"]
        assert result["reads"] > 0

    leftovers = box.temp_files()
    if step in LEAVES_TEMP:
        assert leftovers, f"a kill at {step} should leave a temp file (the test is not biting)"
        assert all(p.stat().st_mode & 0o777 == 0o600 for p in leftovers)
    else:
        assert not leftovers
    # Each kill was before or after the rename: the file holds update 1+2+3 or one fewer.
    from botocore.configloader import raw_config_parse

    crashy = raw_config_parse(str(box.credentials), parse_subsections=False)["crashy"]
    assert len(crashy) == PAD_KEYS + 1
    done = 1 + 2 + 3
    expected = done + KILLS_PER_STEP if step == "after-replace" else done
    assert crashy["counter"] == str(expected)

    box.start()
    wait_until("the temp files to be swept at start", lambda: not box.temp_files(), timeout=10)
