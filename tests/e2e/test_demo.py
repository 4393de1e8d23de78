"""`make demo` keeps working: it runs end to end and shows what the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo" / "demo.py"


@pytest.mark.slow
def test_the_demo_runs_end_to_end() -> None:
    """Awaiting a code, a real TOTP code fed, every profile fresh, each new profile's region
    in the AWS config, the AWS CLI on the role with no AWS_REGION, then `credctl exec
    prod-admin -- aws sts get-caller-identity` served by the endpoint; the key moved into a
    keyring first, and rotated at the end."""
    done = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "awaiting-code" in out
    assert "session-alice-phone renewed; expires" in out
    role = '"Arn": "arn:aws:sts::123456789012:assumed-role/Admin/credd-prod-admin"'
    assert out.count(role) == 2, "by --profile from the file, then by credctl exec"
    exec_part = out.split("A command run by credctl exec")[1]
    assert "container-role" in exec_part, "the AWS CLI took its keys from the endpoint"
    assert "shared-credentials-file" not in exec_part
    assert exec_part.index(role) > exec_part.index("$ credctl exec prod-admin -- aws sts")
    assert "aws_secret_access_key = ****\n" in out
    # No AWS_REGION in the demo: the CLI found the role's region where credd put it.
    config = out.split("each new profile got its region, once")[1].split("==>")[0]
    for profile in ("session-alice-phone", "prod-admin", "prod-readonly"):
        assert f"[profile {profile}]\nregion = us-east-1\n" in config
    assert "credd stopped (exit 0)" in out
    moved = out.split("into the OS keyring")[1].split("Starting the daemon")[0]
    assert "moved the keys of default" in moved and "into the keyring" in moved
    assert "aws_access_key_id" not in moved.split("[unrelated]")[0].split("now:")[1]
    rotation = out.split("Rotating alice's access key")[1]
    assert "rotated the key of default:" in rotation and "now in the keyring" in rotation
    assert "IAM lists 1 key for alice" in rotation
    assert "KEY OF" in rotation and "in 89d23h" in rotation
