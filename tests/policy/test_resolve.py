"""Profiles resolved against the AWS files (credd/policy/resolve.py): devices, regions,
source profiles, chains and their caps, and the profiles that cannot be renewed."""

from __future__ import annotations

from pathlib import Path

from policycases import (
    DEVICE,
    ROLE,
    SECRET,
    SPEC_EXAMPLE,
    P,
    R,
    S,
    parse,
    problems,
)


def test_chained_role_is_capped_to_one_hour_with_a_warning(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A role on a managed session asks at most 1h (AWS's chaining limit): a warning, no error."""
    policy = parse(SPEC_EXAMPLE.replace("duration: 1h", "duration: 2h"), env, tmp_path)
    role = policy.get("prod-admin")
    assert role is not None
    assert (role.requested_duration, role.duration) == (7200, 3600)
    assert policy.warnings[0].startswith(
        "profiles.prod-admin.duration: 2h capped to 1h: AWS limits role chaining to 1 hour"
    )


def test_role_on_a_managed_role_is_chained_too(env: dict[str, str], tmp_path: Path) -> None:
    """A role whose source is another managed role is a chain as well: capped."""
    policy = parse(
        SPEC_EXAMPLE + f"  second-hop:\n    source_profile: prod-admin\n    role_arn: {ROLE}\n"
        "    duration: 3h\n",
        env,
        tmp_path,
    )
    hop = policy.get("second-hop")
    assert hop is not None
    assert hop.source_is_managed
    assert hop.duration == 3600


def test_role_on_long_term_keys_may_ask_12h_and_its_own_device(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A role on an IAM user's keys: up to 12h, no cap, and mfa_serial makes it need a code."""
    policy = parse(
        P + "  r:\n" + R + f"    duration: 12h\n    mfa_serial: {DEVICE}\n", env, tmp_path
    )
    role = policy.profiles[0]
    assert (role.duration, role.requested_duration) == (43_200, 43_200)
    assert role.mfa_serial == DEVICE
    assert role.needs_code
    assert policy.warnings == ()


def test_role_on_someone_elses_session_is_capped(env: dict[str, str], tmp_path: Path) -> None:
    """A source holding a session token (another tool's) is chaining for AWS too."""
    policy = parse(
        P + f"  r:\n    source_profile: borrowed\n    role_arn: {ROLE}\n    duration: 4h\n",
        env,
        tmp_path,
    )
    assert policy.profiles[0].duration == 3600
    assert "capped to 1h" in policy.warnings[0]


def test_mfa_serial_and_region_come_from_aws_config_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    """An MFA session may leave out mfa_serial and region: the source's AWS config has them.

    The config is read from AWS_CONFIG_FILE, not ~/.aws/config; a role chained
    on the session takes the region of the root source, at the end of the chain.
    """
    policy = parse(
        P
        + f"  s:\n    source_profile: default\n  r:\n    source_profile: s\n    role_arn: {ROLE}\n",
        env,
        tmp_path,
    )
    session, role = policy.profiles
    assert session.mfa_serial == DEVICE
    assert session.region == role.region == "eu-west-1"
    assert role.mfa_serial is None


def test_mfa_serial_from_the_credentials_section(env: dict[str, str], tmp_path: Path) -> None:
    """`aws configure mfa-login` may store mfa_serial in the credentials section instead."""
    creds = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    creds.write_text(creds.read_text() + f"mfa_serial = {DEVICE.replace('Name', 'Two')}\n")
    policy = parse(P + "  s:\n    source_profile: kept-keys\n", env, tmp_path)
    assert policy.profiles[0].mfa_serial == DEVICE.replace("Name", "Two")


def test_aws_config_at_home_is_not_read_when_aws_config_file_is_set(
    env: dict[str, str], tmp_path: Path
) -> None:
    """AWS_CONFIG_FILE replaces ~/.aws/config entirely."""
    aws_dir = Path(env["HOME"]) / ".aws"
    aws_dir.mkdir()
    (aws_dir / "config").write_text("[profile plain]\nmfa_serial = " + DEVICE + "\n")
    found = problems(P + "  s:\n    source_profile: plain\n", env, tmp_path)
    assert found[0].startswith("profiles.s.mfa_serial: missing")


def test_region_precedence(env: dict[str, str], tmp_path: Path) -> None:
    """profile, then defaults, then AWS_REGION, AWS_DEFAULT_REGION, the AWS config, us-east-1."""
    base = P + "  s:\n" + S

    def region(text: str, **extra: str) -> str:
        return parse(text, {**env, **extra}, tmp_path).profiles[0].region

    assert region(base + "    region: ca-central-1\ndefaults:\n  region: sa-east-1\n") == (
        "ca-central-1"
    )
    both = {"AWS_REGION": "us-west-1", "AWS_DEFAULT_REGION": "us-west-2"}
    assert region(base + "defaults:\n  region: sa-east-1\n", **both) == "sa-east-1"
    assert region(base, **both) == "us-west-1"
    assert region(base, AWS_DEFAULT_REGION="us-west-2") == "us-west-2"
    assert region(base) == "eu-west-1"  # [default] in the AWS config
    no_region = P + f"  s:\n    source_profile: kept-keys\n    mfa_serial: {DEVICE}\n"
    assert region(no_region) == "us-east-1"
    china = no_region.replace("arn:aws:", "arn:aws-cn:")
    assert region(china) == "cn-north-1"


def test_aws_files_are_read_from_the_policys_credentials_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The source profiles are looked up in the credentials file the policy names."""
    other = tmp_path / "other-creds"
    other.write_text(f"[elsewhere]\naws_access_key_id = A\naws_secret_access_key = {SECRET}\n")
    policy = parse(
        P + f"  s:\n    source_profile: elsewhere\n    mfa_serial: {DEVICE}\n"
        f"credentials_file: {other}\n",
        env,
        tmp_path,
    )
    assert dict(policy.problems) == {}


def test_refresh_order_puts_sources_first_otherwise_file_order(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Profiles come in topological order; among those ready, the file's order decides."""
    policy = parse(
        f"""\
        version: 1
        profiles:
          r2:
            source_profile: r1
            role_arn: {ROLE}
          other:
            source_profile: plain
            mfa_serial: {DEVICE}
          r1:
            source_profile: s
            role_arn: {ROLE}
          s:
            source_profile: default
          lone:
            source_profile: default
            role_arn: {ROLE}
        """,
        env,
        tmp_path,
    )
    assert [p.name for p in policy.profiles] == ["other", "s", "r1", "r2", "lone"]
    assert [p.name for p in policy.dependents("s")] == ["r1"]


def test_missing_source_is_a_reference_problem_not_an_error(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A source in neither the policy nor the AWS files: only that profile has a problem."""
    policy = parse(
        P + "  s:\n" + S + f"  r:\n    source_profile: ghost\n    role_arn: {ROLE}\n",
        env,
        tmp_path,
    )
    assert [p.name for p in policy.profiles] == ["s", "r"]
    assert list(policy.problems) == ["r"]
    problem = policy.problems["r"]
    assert problem.startswith("profiles.r.source_profile: ghost is neither in the policy nor in")
    assert env["AWS_CONFIG_FILE"] in problem


def test_profile_over_long_term_keys_is_a_reference_problem(
    env: dict[str, str], tmp_path: Path
) -> None:
    """credd never takes over a section that holds someone's long-term keys."""
    policy = parse(
        P + f"  kept-keys:\n    source_profile: default\n    mfa_serial: {DEVICE}\n", env, tmp_path
    )
    assert "holds long-term keys under [kept-keys]" in policy.problems["kept-keys"]


def test_a_profile_left_by_mfa_login_may_be_managed(env: dict[str, str], tmp_path: Path) -> None:
    """Taking over a section that holds a session (mfa-login's output) is fine."""
    policy = parse(P + "  borrowed:\n" + S, env, tmp_path)
    assert dict(policy.problems) == {}


def test_unparseable_aws_file_is_a_warning(env: dict[str, str], tmp_path: Path) -> None:
    """A broken AWS config is read as empty and `credd check` says so."""
    Path(env["AWS_CONFIG_FILE"]).write_text("region = x\n")
    policy = parse(P + "  s:\n" + S, env, tmp_path)
    assert any("cannot be parsed" in w for w in policy.warnings)
