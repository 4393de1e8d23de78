"""credd.partitions: the one table of AWS partitions and their default STS regions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from credd.partitions import DEFAULT_REGION, PARTITION_REGIONS, default_region, partition_of

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("arn", "partition"),
    [
        ("arn:aws:iam::123456789012:mfa/alice", "aws"),
        ("arn:aws-cn:iam::123456789012:mfa/alice", "aws-cn"),
        ("arn:aws-us-gov:iam::123456789012:role/Admin", "aws-us-gov"),
        ("arn:aws-iso:iam::123456789012:role/Admin", "aws-iso"),
        ("GAHT12345678", None),  # a hardware token's serial
        ("arn:", None),
        ("arn::iam::1:mfa/x", None),
        ("ARN:aws-cn:iam::1:mfa/x", None),
        ("", None),
    ],
)
def test_partition_of_an_arn(arn: str, partition: str | None) -> None:
    """The second field of an ARN; None for anything that is not one."""
    assert partition_of(arn) == partition


@pytest.mark.parametrize(
    ("arn", "region"),
    [
        ("arn:aws:iam::123456789012:mfa/alice", "us-east-1"),
        ("arn:aws-cn:iam::123456789012:mfa/alice", "cn-north-1"),
        ("arn:aws-us-gov:iam::123456789012:mfa/alice", "us-gov-west-1"),
        ("arn:aws-iso:iam::123456789012:role/Admin", "us-east-1"),
        ("arn:aws-CN:iam::123456789012:mfa/alice", "us-east-1"),
        ("GAHT12345678", "us-east-1"),
        (None, "us-east-1"),
    ],
)
def test_default_region_of_an_arn(arn: str | None, region: str) -> None:
    """China and GovCloud have their own STS region; everything else gets us-east-1."""
    assert default_region(arn) == region


def test_the_default_is_the_commercial_partitions() -> None:
    """One table: the default region is the `aws` partition's row, not a second constant."""
    assert DEFAULT_REGION == PARTITION_REGIONS["aws"] == "us-east-1"


def test_it_is_a_light_leaf() -> None:
    """Importing it loads nothing of credd's but itself, and not `re` (credctl could use it)."""
    probe = (
        "import sys; import credd.partitions;"
        "print(sorted(m for m in sys.modules if m.startswith('credd')), 're' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-S", "-c", probe], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["['credd',", "'credd.partitions']", "False"]
