"""The policy package's entry points (credd/policy/): a whole policy parsed, and every
problem of one reported together, in the order the file reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from policycases import (
    DEVICE,
    ROLE,
    SPEC_EXAMPLE,
    P,
    R,
    S,
    parse,
    problems,
)

from credd.errors import PolicyError
from credd.files.lookup import AwsFiles
from credd.policy import format_summary, parse_policy
from credd.states import Kind


def test_spec_example_is_valid(env: dict[str, str], tmp_path: Path) -> None:
    """The example of SPEC.md parses into an MFA session and a role chained on it."""
    policy = parse(SPEC_EXAMPLE, env, tmp_path)
    session, role = policy.profiles
    assert session.kind is Kind.MFA_SESSION
    assert (session.name, session.source_profile, session.mfa_serial) == (
        "session-MFADeviceName",
        "default",
        DEVICE,
    )
    assert (session.duration, session.refresh_before, session.region) == (129_600, 900, "us-east-1")
    assert session.needs_code
    assert not session.source_is_managed
    assert role.kind is Kind.ROLE
    assert role.source_is_managed
    assert (role.role_arn, role.duration, role.role_session_name) == (
        ROLE,
        3600,
        "credd-prod-admin",
    )
    assert not role.needs_code
    assert policy.warnings == ()
    assert dict(policy.problems) == {}
    assert policy.get("prod-admin") is role
    assert policy.get("nope") is None
    assert policy.dependents("session-MFADeviceName") == (role,)
    assert policy.dependents("prod-admin") == ()


def test_all_problems_are_reported_at_once(env: dict[str, str], tmp_path: Path) -> None:
    """Problems in several places are collected into one PolicyError, none dropped."""
    with pytest.raises(PolicyError) as caught:
        parse(
            f"""\
            version: 1
            defaults:
              duration: 99h
            profiles:
              s:
                source_profile: default
                mfa_serial: nope
              r:
                source_profile: s
                role_arn: {ROLE}
                role_session_name: x
                colour: blue
            """,
            env,
            tmp_path,
        )
    error = caught.value
    assert [p.split(":")[0] for p in error.problems] == [
        "defaults.duration",
        "profiles.s.mfa_serial",
        "profiles.r.colour",
        "profiles.r.role_session_name",
    ]
    assert str(error).startswith(f"{tmp_path / 'policy.yaml'}: policy is invalid (4 problems)")


def test_reference_problems_join_the_errors_when_the_policy_is_invalid(
    env: dict[str, str], tmp_path: Path
) -> None:
    """All at once: a missing source is listed with the errors, in its profile's place."""
    found = problems(
        P
        + f"  r:\n    source_profile: ghost\n    role_arn: {ROLE}\n  s:\n"
        + S
        + "    duration: 1m\n",
        env,
        tmp_path,
    )
    assert [p.split(":")[0] for p in found] == ["profiles.r.source_profile", "profiles.s.duration"]


def test_external_id_is_never_echoed(env: dict[str, str], tmp_path: Path) -> None:
    """An external id is semi-secret: no message, repr or summary shows its value."""
    found = problems(P + "  r:\n" + R + "    external_id: 'Mark3r Value!'\n", env, tmp_path)
    assert found and not any("Mark3r" in p for p in found)
    policy = parse(P + "  r:\n" + R + "    external_id: Mark3rValue\n", env, tmp_path)
    assert policy.profiles[0].external_id == "Mark3rValue"
    assert "Mark3r" not in repr(policy)
    assert "Mark3r" not in format_summary(policy)


def test_parse_is_pure_given_the_aws_files(tmp_path: Path) -> None:
    """With `aws` passed in, nothing is read: the same text gives the same policy anywhere."""
    aws = AwsFiles.from_sections(
        config_path=Path("/nowhere/config"),
        credentials_path=Path("/nowhere/credentials"),
        config_sections={"profile user": {"region": "eu-north-1", "mfa_serial": DEVICE}},
        credentials_sections={"user": {"aws_access_key_id": "A", "aws_secret_access_key": "B"}},
    )
    policy = parse_policy(
        "version: 1\nprofiles:\n  s:\n    source_profile: user\n",
        path=Path("/nowhere/policy.yaml"),
        aws=aws,
        env={"HOME": "/nowhere"},
    )
    assert (policy.profiles[0].mfa_serial, policy.profiles[0].region) == (DEVICE, "eu-north-1")


def test_a_problem_is_listed_with_its_own_profile_not_one_whose_name_it_starts_with(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Regression: problems were grouped by matching their text against profile names, so
    profile `a`'s unknown key `b.duration` was listed under a later profile `a.b`."""
    found = problems(
        P
        + "  a:\n    source_profile: default\n    b.duration: 1\n"
        + "  c:\n    source_profile: default\n    colour: red\n"
        + "  'a.b':\n    source_profile: default\n    shade: blue\n",
        env,
        tmp_path,
    )
    assert [p.split(": ")[0] for p in found] == [
        "profiles.a.b.duration",
        "profiles.c.colour",
        "profiles.a.b.shade",
    ]
