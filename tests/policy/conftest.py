"""Fixtures of the tests of credd/policy/."""

from __future__ import annotations

from pathlib import Path

import pytest
from policycases import AWS_CONFIG, AWS_CREDENTIALS


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A sandbox HOME with AWS files at non-default paths, so the variables must be honoured."""
    home = tmp_path / "home"
    home.mkdir()
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "my-config").write_text(AWS_CONFIG)
    (aws / "my-credentials").write_text(AWS_CREDENTIALS)
    return {
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(aws / "my-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "my-credentials"),
    }
