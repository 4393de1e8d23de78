"""The policy texts and AWS files the tests of credd/policy/ share, and how they parse them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from credd.errors import PolicyError
from credd.policy import Policy, parse_policy

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEVICE = "arn:aws:iam::123456789012:mfa/MFADeviceName"
ROLE = "arn:aws:iam::210987654321:role/Admin"


# `default` holds long-term keys and names its device in the config, the way
# `aws configure mfa-login` users have it; `plain` holds keys and no device;
# `borrowed` holds another tool's session; `cfg-role` is a role in config only.
AWS_CONFIG = f"""\
[default]
region = eu-west-1
mfa_serial = {DEVICE}

[profile plain]
region = ap-southeast-2

[profile cfg-role]
role_arn = arn:aws:iam::123456789012:role/Other
source_profile = default
"""


AWS_CREDENTIALS = f"""\
[default]
aws_access_key_id = AKIAIOSFODNN7EXAMPLE
aws_secret_access_key = {SECRET}

[plain]
aws_access_key_id = AKIAI44QH8DHBEXAMPLE
aws_secret_access_key = {SECRET}

[borrowed]
aws_access_key_id = ASIAEXAMPLE
aws_secret_access_key = {SECRET}
aws_session_token = TOKEN

[kept-keys]
aws_access_key_id = AKIAKEPTEXAMPLE
aws_secret_access_key = {SECRET}
"""


def parse(text: str, env: dict[str, str], tmp_path: Path) -> Policy:
    """`text` (dedented) parsed as tmp_path/policy.yaml."""
    return parse_policy(textwrap.dedent(text), path=tmp_path / "policy.yaml", env=env)


def problems(text: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """The problems of the PolicyError that parsing `text` must raise."""
    with pytest.raises(PolicyError) as caught:
        parse(text, env, tmp_path)
    assert caught.value.path == str(tmp_path / "policy.yaml")
    return caught.value.problems


SPEC_EXAMPLE = f"""\
version: 1
defaults:
  duration: 12h
  refresh_before: 15m
  region: us-east-1
profiles:
  session-MFADeviceName:
    source_profile: default
    mfa_serial: {DEVICE}
    duration: 36h
  prod-admin:
    source_profile: session-MFADeviceName
    role_arn: {ROLE}
    duration: 1h
"""


# Pieces of policies: the head, an MFA session's body and a role's body.
P = "version: 1\nprofiles:\n"
S = f"    source_profile: default\n    mfa_serial: {DEVICE}\n"
R = f"    source_profile: default\n    role_arn: {ROLE}\n"
