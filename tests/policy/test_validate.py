"""The policy's own rules (credd/policy/validate.py): SPEC.md "The policy file", every rule
and every error, each naming its place."""

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

# Each case: the policy text, the place the message must name, a fragment of the reason.
ERROR_CASES = [
    ("empty file", "", "top level", "empty"),
    ("only comments", "# nothing yet\n", "top level", "empty"),
    ("a list", "- version: 1\n", "top level", "must be a mapping"),
    ("a scalar", "hello\n", "top level", "must be a mapping"),
    ("no version", "profiles:\n  s:\n" + S, "version", "missing"),
    ("version 2", "version: 2\nprofiles:\n  s:\n" + S, "version", "must be 1, not 2"),
    ("version string", "version: '1'\nprofiles:\n  s:\n" + S, "version", "must be 1"),
    ("version bool", "version: true\nprofiles:\n  s:\n" + S, "version", "must be 1"),
    ("unknown top key", P + "  s:\n" + S + "polices: {}\n", "polices", "unknown key"),
    ("non-string top key", P + "  s:\n" + S + "1: x\n", "top level", "not a name"),
    ("defaults not a mapping", P + "  s:\n" + S + "defaults: 12h\n", "defaults", "mapping"),
    (
        "unknown defaults key",
        P + "  s:\n" + S + "defaults:\n  mfa_serial: x\n",
        "defaults.mfa_serial",
        "unknown key",
    ),
    (
        "defaults duration over 36h",
        P + "  s:\n" + S + "defaults:\n  duration: 40h\n",
        "defaults.duration",
        "out of range for an MFA session: GetSessionToken allows 15m to 36h",
    ),
    (
        "defaults refresh_before negative",
        P + "  s:\n" + S + "defaults:\n  refresh_before: -1\n",
        "defaults.refresh_before",
        "negative",
    ),
    (
        "defaults code_command shell string",
        P + "  s:\n" + S + "defaults:\n  code_command: ykman oath accounts code\n",
        "defaults.code_command",
        "never a shell string",
    ),
    (
        "credentials_file not a string",
        P + "  s:\n" + S + "credentials_file: 3\n",
        "credentials_file",
        "must be a path",
    ),
    ("no profiles", "version: 1\n", "profiles", "missing"),
    ("empty profiles", "version: 1\nprofiles:\n", "profiles", "empty"),
    ("profiles a list", "version: 1\nprofiles: [a, b]\n", "profiles", "not a mapping"),
    ("profile not a mapping", P + "  s: default\n", "profiles.s", "must be a mapping"),
    ("profile name a number", P + "  12:\n" + S, "profiles.12", "must be a string"),
    ("profile name with ]", P + "  'a]b':\n" + S, "profiles.a]b", "[ or ]"),
    ("profile name with [", P + "  '[a':\n" + S, "profiles.[a", "[ or ]"),
    ("profile name padded", P + "  ' a':\n" + S, "profiles. a", "space"),
    ("profile name empty", P + "  '':\n" + S, "profiles.", "empty"),
    ("profile name newline", P + '  "a\\nb":\n' + S, "profiles.a\nb", "line break"),
    (
        "unknown profile key",
        P + "  s:\n" + S + "    mfa_device: x\n",
        "profiles.s.mfa_device",
        "unknown",
    ),
    (
        "no source_profile",
        P + f"  s:\n    mfa_serial: {DEVICE}\n",
        "profiles.s.source_profile",
        "missing",
    ),
    (
        "source_profile not a string",
        P + f"  s:\n    source_profile: [default]\n    mfa_serial: {DEVICE}\n",
        "profiles.s.source_profile",
        "must be a string",
    ),
    (
        "source_profile null",
        P + f"  s:\n    source_profile:\n    mfa_serial: {DEVICE}\n",
        "profiles.s.source_profile",
        "no value",
    ),
    (
        "own source",
        P + f"  s:\n    source_profile: s\n    mfa_serial: {DEVICE}\n",
        "profiles.s.source_profile",
        "its own source",
    ),
    (
        "session under 15m",
        P + "  s:\n" + S + "    duration: 10m\n",
        "profiles.s.duration",
        "10m is out of range for an MFA session: GetSessionToken allows 15m to 36h",
    ),
    (
        "session over 36h",
        P + "  s:\n" + S + "    duration: 37h\n",
        "profiles.s.duration",
        "out of range",
    ),
    (
        "role over 12h",
        P + "  r:\n" + R + "    duration: 13h\n",
        "profiles.r.duration",
        "13h is out of range for a role: AssumeRole allows 15m to 12h",
    ),
    (
        "role under 15m",
        P + "  r:\n" + R + "    duration: 899\n",
        "profiles.r.duration",
        "out of range",
    ),
    (
        "chained role over 12h is an error, not a cap",
        SPEC_EXAMPLE.replace("duration: 1h", "duration: 24h"),
        "profiles.prod-admin.duration",
        "out of range for a role",
    ),
    (
        "duration without unit",
        P + "  s:\n" + S + "    duration: '3600'\n",
        "profiles.s.duration",
        "no unit",
    ),
    ("duration bool", P + "  s:\n" + S + "    duration: yes\n", "profiles.s.duration", "boolean"),
    ("duration float", P + "  s:\n" + S + "    duration: 1.5\n", "profiles.s.duration", "float"),
    (
        "duration garbage",
        P + "  s:\n" + S + "    duration: 1 day\n",
        "profiles.s.duration",
        "not a duration",
    ),
    (
        "refresh_before not under duration",
        P + "  r:\n" + R + "    refresh_before: 1h\n",
        "profiles.r.refresh_before",
        "must be less than the duration 1h",
    ),
    (
        "refresh_before after the chaining cap",
        SPEC_EXAMPLE.replace("duration: 1h", "duration: 3h\n    refresh_before: 90m"),
        "profiles.prod-admin.refresh_before",
        "must be less than the duration 1h",
    ),
    (
        "refresh_before negative",
        P + "  s:\n" + S + "    refresh_before: -60\n",
        "profiles.s.refresh_before",
        "negative",
    ),
    (
        "mfa_serial malformed",
        P + "  s:\n    source_profile: default\n    mfa_serial: arn:aws:iam::12345:mfa/x\n",
        "profiles.s.mfa_serial",
        "not an MFA device ARN",
    ),
    (
        "mfa_serial with non-ASCII digits",
        P + "  s:\n    source_profile: default\n    mfa_serial: arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:mfa/x\n",
        "profiles.s.mfa_serial",
        "not an MFA device ARN",
    ),
    (
        "mfa_serial a role ARN",
        P + f"  s:\n    source_profile: default\n    mfa_serial: {ROLE}\n",
        "profiles.s.mfa_serial",
        "not an MFA device ARN",
    ),
    (
        "mfa_serial a U2F key",
        P + "  s:\n    source_profile: default\n"
        "    mfa_serial: arn:aws:iam::123456789012:u2f/user/k\n",
        "profiles.s.mfa_serial",
        "U2F",
    ),
    (
        "mfa_serial a number",
        P + "  s:\n    source_profile: default\n    mfa_serial: 123456789012\n",
        "profiles.s.mfa_serial",
        "must be a string",
    ),
    (
        "role_arn malformed",
        P + "  r:\n    source_profile: default\n    role_arn: arn:aws:iam::123456789012:user/Bob\n",
        "profiles.r.role_arn",
        "not a role ARN",
    ),
    (
        "role_arn wrong account length",
        P + "  r:\n    source_profile: default\n    role_arn: arn:aws:iam::1234:role/Admin\n",
        "profiles.r.role_arn",
        "not a role ARN",
    ),
    (
        "role_session_name too short",
        P + "  r:\n" + R + "    role_session_name: a\n",
        "profiles.r.role_session_name",
        "2 to 64",
    ),
    (
        "role_session_name with a space",
        P + "  r:\n" + R + "    role_session_name: my session\n",
        "profiles.r.role_session_name",
        "2 to 64",
    ),
    (
        "role_session_name too long",
        P + "  r:\n" + R + f"    role_session_name: {'a' * 65}\n",
        "profiles.r.role_session_name",
        "2 to 64",
    ),
    (
        "role_session_name on an MFA session",
        P + "  s:\n" + S + "    role_session_name: me\n",
        "profiles.s.role_session_name",
        "only a role",
    ),
    (
        "external_id too short",
        P + "  r:\n" + R + "    external_id: x\n",
        "profiles.r.external_id",
        "2 to 1224",
    ),
    (
        "external_id too long",
        P + "  r:\n" + R + f"    external_id: {'x' * 1225}\n",
        "profiles.r.external_id",
        "2 to 1224",
    ),
    (
        "external_id a number",
        P + "  r:\n" + R + "    external_id: 1234\n",
        "profiles.r.external_id",
        "string",
    ),
    (
        "external_id on an MFA session",
        P + "  s:\n" + S + "    external_id: abc\n",
        "profiles.s.external_id",
        "only a role",
    ),
    (
        "code_command a shell string",
        P + "  s:\n" + S + "    code_command: ykman oath accounts code --single aws\n",
        "profiles.s.code_command",
        "an argv list such as [ykman, oath, accounts, code], never a shell string",
    ),
    (
        "code_command empty",
        P + "  s:\n" + S + "    code_command: []\n",
        "profiles.s.code_command",
        "empty list",
    ),
    (
        "code_command non-string item",
        P + "  s:\n" + S + "    code_command: [pass, otp, 6]\n",
        "profiles.s.code_command[2]",
        "must be a string",
    ),
    (
        "code_command empty program",
        P + "  s:\n" + S + "    code_command: ['', x]\n",
        "profiles.s.code_command[0]",
        "empty",
    ),
    (
        "notify a shell string",
        P + "  s:\n" + S + "    notify: notify-send hi\n",
        "profiles.s.notify",
        "never a shell string",
    ),
    (
        "notify a mapping",
        P + "  s:\n" + S + "    notify: {a: b}\n",
        "profiles.s.notify",
        "a mapping",
    ),
    (
        "region malformed",
        P + "  s:\n" + S + "    region: Europe\n",
        "profiles.s.region",
        "not an AWS region",
    ),
    (
        "region a number",
        P + "  s:\n" + S + "    region: 1\n",
        "profiles.s.region",
        "must be a string",
    ),
    (
        "MFA session with no device anywhere",
        P + "  s:\n    source_profile: plain\n",
        "profiles.s.mfa_serial",
        "missing, and the source profile plain names none",
    ),
    (
        "MFA session on a managed profile",
        P + "  s:\n" + S + f"  s2:\n    source_profile: s\n    mfa_serial: {DEVICE}\n",
        "profiles.s2.source_profile",
        "GetSessionToken needs an IAM user's long-term keys",
    ),
    (
        "chained role with its own device",
        SPEC_EXAMPLE.replace("duration: 1h", f"mfa_serial: {DEVICE}"),
        "profiles.prod-admin.mfa_serial",
        "the chain already carries MFA",
    ),
    (
        "profile written twice",
        P + "  s:\n" + S + "  s:\n" + S,
        "profiles.s",
        "written twice (lines 3 and 6)",
    ),
    (
        "key written twice",
        P + "  s:\n" + S + "    duration: 1h\n    duration: 2h\n",
        "profiles.s.duration",
        "written twice",
    ),
]


@pytest.mark.parametrize(
    ("text", "place", "fragment"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_error_names_its_place(
    env: dict[str, str], tmp_path: Path, text: str, place: str, fragment: str
) -> None:
    """Every invalid policy is a PolicyError whose problem names the place and the reason."""
    found = problems(text, env, tmp_path)
    assert any(p.startswith(f"{place}: ") and fragment in p for p in found), found


def test_cycle_is_named_once_in_file_order(env: dict[str, str], tmp_path: Path) -> None:
    """A cycle of source profiles is one error listing the cycle from its first entry."""
    found = problems(
        f"""\
        version: 1
        profiles:
          a:
            source_profile: c
            role_arn: {ROLE}
          b:
            source_profile: a
            role_arn: {ROLE}
          c:
            source_profile: b
            role_arn: {ROLE}
          d:
            source_profile: c
            role_arn: {ROLE}
        """,
        env,
        tmp_path,
    )
    assert found == [
        "profiles.a.source_profile: cycle of source profiles: a -> c -> b -> a;"
        " one of them must start from a profile with long-term keys"
    ]


def test_defaults_by_kind(env: dict[str, str], tmp_path: Path) -> None:
    """Unset: sessions 12h, roles 1h, refresh 15m; defaults.duration applies to sessions only."""
    text = P + "  s:\n" + S + "  r:\n" + R
    session, role = parse(text, env, tmp_path).profiles
    assert (session.duration, role.duration) == (43_200, 3600)
    assert (session.refresh_before, role.refresh_before) == (900, 900)
    text += "defaults:\n  duration: 20h\n  refresh_before: 10m\n"
    session, role = parse(text, env, tmp_path).profiles
    assert (session.duration, role.duration) == (72_000, 3600)
    assert (session.refresh_before, role.refresh_before) == (600, 600)


@pytest.mark.parametrize(
    ("text", "lead", "warning"),
    [
        (
            P + "  r:\n" + R + "    duration: 15m\n",
            450,
            "profiles.r.refresh_before (default 15m): 15m capped to 7m30s, half the duration"
            " 15m: credd renews no sooner than halfway through a session's life",
        ),
        (
            P + "  r:\n" + R + "defaults:\n  refresh_before: 2h\n",
            1800,
            "profiles.r.refresh_before (from defaults.refresh_before): 2h capped to 30m, half"
            " the duration 1h: credd renews no sooner than halfway through a session's life",
        ),
        (P + "  r:\n" + R + "    duration: 30m\n", 900, None),  # exactly half: as it is
    ],
    ids=["15m-role-built-in-lead", "lead-from-defaults", "half-is-kept"],
)
def test_an_inherited_lead_over_half_the_duration_is_capped_with_a_warning(
    env: dict[str, str], tmp_path: Path, text: str, lead: int, warning: str | None
) -> None:
    """A 15m role (AWS's minimum) is valid with no refresh_before: a lead inherited from
    defaults or the built-in 15m that exceeds half the duration becomes half of it, and
    `credd check` says so; set on the profile itself, it must only be under the duration."""
    policy = parse(text, env, tmp_path)
    assert policy.profiles[0].refresh_before == lead
    assert list(policy.warnings) == ([warning] if warning else [])


def test_a_lead_set_on_the_profile_is_not_capped(env: dict[str, str], tmp_path: Path) -> None:
    """Chosen for the profile: 10m on a 15m role is kept (no warning); 15m is an error."""
    policy = parse(P + "  r:\n" + R + "    duration: 15m\n    refresh_before: 10m\n", env, tmp_path)
    assert (policy.profiles[0].refresh_before, policy.warnings) == (600, ())
    found = problems(
        P + "  r:\n" + R + "    duration: 15m\n    refresh_before: 15m\n", env, tmp_path
    )
    assert found == [
        "profiles.r.refresh_before: 15m must be less than the duration 15m, or credd would"
        " renew without end"
    ]


def test_commands_inherit_from_defaults_and_can_be_overridden(
    env: dict[str, str], tmp_path: Path
) -> None:
    """code_command and notify are argv tuples; a profile's own replaces the default."""
    policy = parse(
        P
        + "  s:\n"
        + S
        + "    code_command: [op, item, get, aws, --otp]\n"
        + "  t:\n"
        + S
        + "defaults:\n  code_command: [ykman, oath, accounts, code, --single, aws]\n"
        + "  notify: [notify-send, credd, '{message}']\n",
        env,
        tmp_path,
    )
    s, t = policy.profiles
    assert s.code_command == ("op", "item", "get", "aws", "--otp")
    assert t.code_command == ("ykman", "oath", "accounts", "code", "--single", "aws")
    assert s.notify == t.notify == ("notify-send", "credd", "{message}")
    assert policy.warnings == ()


def test_unknown_notify_placeholder_is_a_warning(env: dict[str, str], tmp_path: Path) -> None:
    """A misspelt placeholder is passed as written; check warns about it."""
    policy = parse(P + "  s:\n" + S + "    notify: [notify-send, '{msg}']\n", env, tmp_path)
    assert policy.warnings == (
        "profiles.s.notify[1]: {msg} is not filled in (credd fills {profile}, {mfa_serial},"
        " {message})",
    )


def test_credentials_file_precedence(env: dict[str, str], tmp_path: Path) -> None:
    """The policy's key (~ from HOME), then AWS_SHARED_CREDENTIALS_FILE, then ~/.aws/credentials."""
    body = P + "  s:\n" + S
    home = Path(env["HOME"])
    by_key = parse(body + "credentials_file: ~/elsewhere/creds\n", env, tmp_path)
    assert by_key.credentials_file == home / "elsewhere" / "creds"
    relative = parse(body + "credentials_file: creds\n", env, tmp_path)
    assert relative.credentials_file == tmp_path / "creds"
    by_var = parse(body, env, tmp_path)
    assert by_var.credentials_file == Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    bare = {k: v for k, v in env.items() if k != "AWS_SHARED_CREDENTIALS_FILE"}
    by_home = parse(
        body,
        bare,
        tmp_path,
    )
    assert by_home.credentials_file == home / ".aws" / "credentials"


def test_role_session_name_default_is_sanitised(env: dict[str, str], tmp_path: Path) -> None:
    """`credd-<name>` with characters AWS refuses replaced, cut to 64."""
    long_name = "x" * 70
    policy = parse(
        P
        + "  'team/prod admin':\n"
        + R
        + f"  {long_name}:\n"
        + R
        + "  own:\n"
        + R
        + "    role_session_name: me@corp\n",
        env,
        tmp_path,
    )
    names = [p.role_session_name for p in policy.profiles]
    assert names == ["credd-team-prod-admin", ("credd-" + long_name)[:64], "me@corp"]


def test_hardware_token_serial_is_accepted(env: dict[str, str], tmp_path: Path) -> None:
    """Older hardware TOTP tokens go by serial number, not ARN; GetSessionToken takes both."""
    policy = parse(
        P + "  s:\n    source_profile: default\n    mfa_serial: GAHT12345678\n", env, tmp_path
    )
    assert policy.profiles[0].mfa_serial == "GAHT12345678"


def test_endpoint_port_is_a_port_number_only(env: dict[str, str], tmp_path: Path) -> None:
    """`endpoint_port`: 0 (a free port) by default, else 1-65535; an address is refused, so
    the endpoint can never be told to listen beyond 127.0.0.1."""
    body = P + "  s:\n" + S
    assert parse(body, env, tmp_path).endpoint_port == 0
    assert parse(body + "endpoint_port: 39113\n", env, tmp_path).endpoint_port == 39113
    for bad in ("0.0.0.0:39113", "'39113'", "70000", "-1", "true", "[1]"):
        found = problems(body + f"endpoint_port: {bad}\n", env, tmp_path)
        assert len(found) == 1 and found[0].startswith("endpoint_port: must be a TCP port"), found
    found = problems(body + "endpoint_host: 0.0.0.0\n", env, tmp_path)
    assert found[0].startswith("endpoint_host: unknown key; did you mean 'endpoint_port'?")
