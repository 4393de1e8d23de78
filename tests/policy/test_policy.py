"""The policy file (credd/policy/): SPEC.md "The policy file", every rule and every error."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from credd.errors import PolicyError
from credd.files.lookup import AwsFiles
from credd.policy import Policy, format_summary, load_policy, parse_policy
from credd.states import Kind

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


def parse(text: str, env: dict[str, str], tmp_path: Path) -> Policy:
    return parse_policy(textwrap.dedent(text), path=tmp_path / "policy.yaml", env=env)


def problems(text: str, env: dict[str, str], tmp_path: Path) -> list[str]:
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


# Each case: the policy text, the place the message must name, a fragment of the reason.
P = "version: 1\nprofiles:\n"
S = f"    source_profile: default\n    mfa_serial: {DEVICE}\n"
R = f"    source_profile: default\n    role_arn: {ROLE}\n"
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
        "refresh_before from defaults not under a role's duration",
        P + "  r:\n" + R + "defaults:\n  refresh_before: 2h\n",
        "profiles.r.refresh_before (from defaults.refresh_before)",
        "must be less than",
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
        "missing, and the source profile 'plain' names none",
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


def test_yaml_syntax_error_gives_line_and_column(env: dict[str, str], tmp_path: Path) -> None:
    """A YAML syntax error is located 1-based, as editors count, and is the only problem."""
    found = problems("version: 1\ndefaults: {}\nprofiles:\n  a: b: c\n", env, tmp_path)
    assert found == ["line 4, column 7: mapping values are not allowed here"]


def test_yaml_tab_indent_is_located(env: dict[str, str], tmp_path: Path) -> None:
    """A tab where YAML wants spaces is a located error too."""
    found = problems("version: 1\nprofiles:\n  a:\n\tsource_profile: x\n", env, tmp_path)
    assert found[0].startswith("line 4, column 1: ")


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


def test_external_id_is_never_echoed(env: dict[str, str], tmp_path: Path) -> None:
    """An external id is semi-secret: no message, repr or summary shows its value."""
    found = problems(P + "  r:\n" + R + "    external_id: 'Mark3r Value!'\n", env, tmp_path)
    assert found and not any("Mark3r" in p for p in found)
    policy = parse(P + "  r:\n" + R + "    external_id: Mark3rValue\n", env, tmp_path)
    assert policy.profiles[0].external_id == "Mark3rValue"
    assert "Mark3r" not in repr(policy)
    assert "Mark3r" not in format_summary(policy)


def test_python_object_tag_is_refused_without_running_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """safe_load only: a `!!python/object` document is a located error, and nothing runs."""
    marker = tmp_path / "pwned"
    found = problems(
        P + "  s:\n" + S + f"    region: !!python/object/apply:os.system ['touch {marker}']\n",
        env,
        tmp_path,
    )
    assert found[0].startswith("line 6, column 13: could not determine a constructor")
    assert not marker.exists()


BILLION_LAUGHS = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
profiles:
  s:
    source_profile: default
    code_command: *i
    notify: *i
    region: *i
"""


def test_billion_laughs_is_refused_quickly(env: dict[str, str], tmp_path: Path) -> None:
    """Nested aliases are never expanded: the document is refused in well under a second."""
    started = time.monotonic()
    found = problems(BILLION_LAUGHS, env, tmp_path)
    assert time.monotonic() - started < 2
    assert (
        "a: unknown key; expected one of version, defaults, credentials_file, profiles,"
        " endpoint_port" in found
    )
    assert "profiles.s.code_command[0]: must be a string, not a list (quote it)" in found
    assert "profiles.s.region: must be a string, not a list (quote it)" in found
    assert all(len(p) < 300 for p in found)


def test_deep_nesting_is_refused_not_a_crash(env: dict[str, str], tmp_path: Path) -> None:
    """A document nested deeper than Python's recursion limit is an error, not a traceback."""
    found = problems("version: 1\nprofiles: " + "[" * 100_000, env, tmp_path)
    assert found == ["top level: nested too deeply to be a policy"]


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
    assert problem.startswith("profiles.r.source_profile: 'ghost' is neither in the policy nor in")
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


def test_unparseable_aws_file_is_a_warning(env: dict[str, str], tmp_path: Path) -> None:
    """A broken AWS config is read as empty and `credd check` says so."""
    Path(env["AWS_CONFIG_FILE"]).write_text("region = x\n")
    policy = parse(P + "  s:\n" + S, env, tmp_path)
    assert any("cannot be parsed" in w for w in policy.warnings)


def test_hardware_token_serial_is_accepted(env: dict[str, str], tmp_path: Path) -> None:
    """Older hardware TOTP tokens go by serial number, not ARN; GetSessionToken takes both."""
    policy = parse(
        P + "  s:\n    source_profile: default\n    mfa_serial: GAHT12345678\n", env, tmp_path
    )
    assert policy.profiles[0].mfa_serial == "GAHT12345678"


def test_load_policy_reads_the_file(env: dict[str, str], tmp_path: Path) -> None:
    """load_policy reads UTF-8 (a BOM is tolerated) and parses it."""
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SPEC_EXAMPLE.encode())
    assert load_policy(path, env).path == path


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("latin-1", "not UTF-8"),
        ("huge", "larger than"),
    ],
)
def test_load_policy_refuses_an_unusable_file(
    env: dict[str, str], tmp_path: Path, setup: str, fragment: str
) -> None:
    """A file that cannot be read is a PolicyError naming the file, like any invalid policy."""
    path = tmp_path / "policy.yaml"
    if setup == "directory":
        path.mkdir()
    elif setup == "latin-1":
        path.write_bytes("version: 1 # caf\xe9\n".encode("latin-1"))
    elif setup == "huge":
        path.write_text("#" * (2 << 20))
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env)
    assert caught.value.path == str(path)
    assert fragment in caught.value.problems[0]


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
