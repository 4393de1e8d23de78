"""`_CREDD_COMPLETE=profiles credd`: the names a shell completes, never an error.

With credd running they are the daemon's (tests/test_completion.py); here, with none,
they are the policy's, even a policy with mistakes, and nothing at all from a policy
that cannot or must not be read. It always exits 0 and prints nothing on stderr.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from support.daemon import CREDD


def names(tmp_path: Path, policy_text: str | None, mode: int = 0o600) -> str:
    """What the real credd prints in completion mode for this policy, with no daemon."""
    policy = tmp_path / "conf" / "policy.yaml"
    policy.parent.mkdir(mode=0o700, exist_ok=True)
    if policy_text is not None:
        policy.write_text(policy_text)
        policy.chmod(mode)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CREDD_POLICY": str(policy),
        "CREDD_SOCKET": str(tmp_path / "none" / "credd.sock"),
        "_CREDD_COMPLETE": "profiles",
    }
    done = subprocess.run([CREDD, "ignored"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stderr == ""
    return done.stdout


def test_the_policys_names_in_its_order_even_with_mistakes(tmp_path: Path) -> None:
    """No daemon: the policy's profile names, one a line, though the policy is invalid."""
    text = "version: 1\nprofiles:\n  b-second:\n    duration: forever\n  a-first: {}\n"
    assert names(tmp_path, text) == "b-second\na-first\n"


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (None, 0o600),  # no policy
        ("version: 1\nprofiles:\n  x: {}\n", 0o666),  # others could change it
        ("profiles: [a, b]\n", 0o600),  # not a mapping
        ("profiles:\n  x: {\n", 0o600),  # not YAML
        ("- a\n", 0o600),
    ],
)
def test_nothing_from_a_policy_that_cannot_be_read(
    tmp_path: Path, text: str | None, mode: int
) -> None:
    """A missing, untrusted or malformed policy completes nothing, silently."""
    assert names(tmp_path, text, mode) == ""
