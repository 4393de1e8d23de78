"""`credd init`: first-run questions on a real terminal (a pty) and on piped input.

The policy it writes is one `credd check` accepts and that says what was
answered; an existing policy is replaced only after a yes; end of input
aborts with nothing written. HOME and the AWS files are sandboxed in tmp_path.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.daemon import CREDD
from support.secret_service import SecretService
from support.terminal import Terminal

from credd import paths
from credd.adapters.keyring import Keyring
from credd.commands.check import run_check
from credd.commands.init import run_init
from credd.policy import load_policy
from credd.states import Kind

SERIAL = "arn:aws:iam::123456789012:mfa/alice"
ADMIN_ARN = "arn:aws:iam::123456789012:role/Admin"
READONLY_ARN = "arn:aws:iam::123456789012:role/ReadOnly"
CREDENTIALS_TEXT = """[default]
aws_access_key_id = AKIAEXAMPLEDEFAULT01
aws_secret_access_key = CANARYinitSecretDefault000000000000000000
[ops]
aws_access_key_id = AKIAEXAMPLEOPS000001
aws_secret_access_key = CANARYinitSecretOps000000000000000000000
[someone-elses-session]
aws_access_key_id = ASIAEXAMPLE000000001
aws_secret_access_key = x
aws_session_token = y
"""
CONFIG_TEXT = f"[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n"


def sandbox(
    tmp_path: Path, credentials: str = CREDENTIALS_TEXT, config: str = CONFIG_TEXT
) -> dict[str, str]:
    """A HOME with long-term keys and an AWS config naming the default's device."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(credentials)
    (home / ".aws" / "config").write_text(config)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "NO_COLOR": "1",
    }


def policy_file(env: dict[str, str]) -> Path:
    """Where init writes the policy in this sandbox."""
    return Path(env["XDG_CONFIG_HOME"]) / "credd" / "policy.yaml"


def init(env: dict[str, str], *answers: str, platform: str = "linux") -> tuple[int, str]:
    """`run_init` with these answers piped in, one per line; its status and output."""
    out = io.StringIO()
    stdin = io.StringIO("".join(f"{a}\n" for a in answers))
    status = run_init(env=env, stdin=stdin, out=out, platform=platform, python=sys.executable)
    return status, out.getvalue()


# The answers to every question, defaults taken, no roles, no install.
DEFAULTS = ("", "", "", "", "", "")


def test_answers_on_a_terminal_make_a_policy_that_credd_check_accepts(tmp_path: Path) -> None:
    """On a pty, as mfa-login asks: the source profiles are listed, the config's device and
    `session-<device>` are offered in brackets, a bad answer is asked again, two roles are
    chained; the policy written says exactly that, `credd check` accepts it, and the
    summary is shown. Directory 0700, file 0600, comments kept."""
    env = sandbox(tmp_path)
    term = Terminal([CREDD, "init"], env)
    try:
        term.expect("Profiles with long-term keys in ~/.aws/credentials: default, ops")
        term.expect("Source profile [default]: ")
        term.send("")
        term.expect(f"MFA serial number or ARN [{SERIAL}]: ")
        term.send("")
        term.expect("Profile to update [session-alice]: ")
        term.send("")
        term.expect("Session duration [12h]: ")
        term.send("forever")
        term.expect("is not a duration")
        term.expect("Session duration [12h]: ")
        term.send("8h")
        term.expect("Role ARN (Enter to finish): ")
        term.send(ADMIN_ARN)
        term.expect("Profile name for it [Admin]: ")
        term.send("prod-admin")
        term.expect("Role session duration [1h]: ")
        term.send("30m")
        term.expect("Role ARN (Enter to finish): ")
        term.send(READONLY_ARN)
        term.expect("Profile name for it [ReadOnly]: ")
        term.send("")
        term.expect("Role session duration [1h]: ")
        term.send("")
        term.expect("Role ARN (Enter to finish): ")
        term.send("")
        # What `credd check` will say comes first, then the question about the service.
        term.expect("3 profiles (in refresh order)")
        term.expect("user service now")
        assert not policy_file(env).exists(), "nothing is written before the last answer"
        term.send("")
        term.expect("wrote ")
        status = term.finish()
    except BaseException:
        term.kill()
        raise
    assert status == 0, term.text()

    path = policy_file(env)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    text = path.read_text()
    assert "# An MFA session" in text
    assert "# code_command: [ykman" in text
    policy = load_policy(path, env)
    assert not policy.problems
    by_name = {p.name: p for p in policy.profiles}
    assert list(by_name) == ["session-alice", "prod-admin", "ReadOnly"]
    session = by_name["session-alice"]
    assert session.kind is Kind.MFA_SESSION
    assert (session.source_profile, session.mfa_serial, session.duration) == (
        "default",
        SERIAL,
        8 * 3600,
    )
    assert session.region == "eu-west-1"  # from the config, not written in the policy
    admin = by_name["prod-admin"]
    assert (admin.kind, admin.source_profile, admin.role_arn, admin.duration) == (
        Kind.ROLE,
        "session-alice",
        ADMIN_ARN,
        1800,
    )
    assert by_name["ReadOnly"].role_arn == READONLY_ARN
    assert by_name["ReadOnly"].duration == 3600

    check = subprocess.run(
        [CREDD, "check", "--policy", str(path)], env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    assert "CANARY" not in term.text()


def test_piped_answers_with_defaults_write_the_minimal_policy(tmp_path: Path) -> None:
    """Every default taken from piped input: one MFA session, defaults as offered."""
    env = sandbox(tmp_path)
    status, out = init(env, *DEFAULTS)
    assert status == 0, out
    [session] = load_policy(policy_file(env), env).profiles
    assert (session.name, session.source_profile, session.mfa_serial, session.duration) == (
        "session-alice",
        "default",
        SERIAL,
        43200,
    )
    assert "session-alice (mfa-session)" in out  # credd check's summary


def test_wrong_answers_are_asked_again(tmp_path: Path) -> None:
    """A source without long-term keys, a device that is not an MFA ARN, a target that holds
    long-term keys, a role ARN that is not one, a name already used, a chained role over 1h:
    each is explained and asked again."""
    env = sandbox(tmp_path)
    status, out = init(
        env,
        "someone-elses-session",  # a session, not long-term keys
        "ops",
        "arn:aws:iam::123:mfa/x",  # bad account
        SERIAL,
        "default",  # holds long-term keys
        "work",
        "3600",  # bare digits are seconds
        "arn:aws:iam::123456789012:user/Admin",  # not a role
        ADMIN_ARN,
        "work",  # already used
        "admin",
        "13h",  # over AssumeRole's 12h
        "2h",  # chained roles get at most 1h: capped with a note, as credd check does
        "",
        "",
    )
    assert status == 0, out
    for reason in (
        "someone-elses-session has no long-term keys; one of: default, ops",
        "'arn:aws:iam::123:mfa/x' is not an MFA device ARN",
        "default holds long-term keys that credd would overwrite",
        "'arn:aws:iam::123456789012:user/Admin' is not a role ARN",
        "work is already used here",
        "13h is out of range for a role: 15m to 12h",
        "2h will be capped to 1h: AWS limits role chaining to 1 hour",
    ):
        assert reason in out
    assert "unquoted integer" not in out
    profiles = {p.name: p for p in load_policy(policy_file(env), env).profiles}
    assert profiles["work"].source_profile == "ops"
    assert profiles["work"].duration == 3600
    assert (profiles["admin"].requested_duration, profiles["admin"].duration) == (7200, 3600)


def test_names_that_need_quoting_stay_valid_yaml(tmp_path: Path) -> None:
    """The hand-written YAML quotes every value: a profile called `we"ird: #1` reads back
    as it was typed."""
    env = sandbox(tmp_path)
    status, out = init(env, "", "", 'we"ird: #1', "", "", "")
    assert status == 0, out
    document = yaml.safe_load(policy_file(env).read_text())
    assert list(document["profiles"]) == ['we"ird: #1']


def test_an_existing_policy_is_kept_without_a_yes(tmp_path: Path) -> None:
    """An existing policy: Enter (the default, no) or `n` keeps it byte for byte and asks
    nothing more; `y` replaces it."""
    env = sandbox(tmp_path)
    path = policy_file(env)
    path.parent.mkdir(parents=True)
    path.write_text("# mine\nversion: 1\n")
    for answer in ("", "n", "no"):
        status, out = init(env, answer, *DEFAULTS)
        assert status == 1
        assert "already exists" in out
        assert "Source profile" not in out
        assert path.read_text() == "# mine\nversion: 1\n"

    status, out = init(env, "y", *DEFAULTS)
    assert status == 0, out
    assert "# mine" not in path.read_text()
    assert load_policy(path, env).profiles[0].name == "session-alice"


@pytest.mark.parametrize("answered", range(len(DEFAULTS)))
def test_end_of_input_aborts_and_writes_nothing(tmp_path: Path, answered: int) -> None:
    """Input that ends before the last answer (even the install question): exit 1, no
    policy and no directory made, and it says so."""
    env = sandbox(tmp_path)
    status, out = init(env, *DEFAULTS[:answered])
    assert status == 1
    assert "nothing was written" in out
    assert not policy_file(env).parent.exists()


def test_end_of_input_keeps_an_existing_policy(tmp_path: Path) -> None:
    """A yes to replacing, then end of input: the old policy is still there."""
    env = sandbox(tmp_path)
    path = policy_file(env)
    path.parent.mkdir(parents=True)
    path.write_text("version: 1\n")
    status, _ = init(env, "y", "", "")
    assert status == 1
    assert path.read_text() == "version: 1\n"


def test_a_yes_to_install_writes_the_systemd_unit(tmp_path: Path) -> None:
    """On Linux, `y` to the last question runs `credd install systemd` into the sandbox."""
    env = sandbox(tmp_path)
    status, out = init(env, "", "", "", "", "", "y", platform="linux")
    assert status == 0, out
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "credd.service"
    assert unit.is_file()
    assert sys.executable in unit.read_text()
    assert "systemctl --user" in out


def test_a_yes_to_install_on_macos_writes_the_launch_agent(tmp_path: Path) -> None:
    """On macOS the question is about launchd, and a yes writes the LaunchAgent."""
    env = sandbox(tmp_path)
    status, out = init(env, "", "", "", "", "", "y", platform="darwin")
    assert status == 0, out
    assert "launchd user service" in out
    plist = Path(env["HOME"]) / "Library" / "LaunchAgents" / "com.credd.agent.plist"
    assert plist.is_file()


def test_without_keys_it_says_how_to_add_them_and_asks_nothing(tmp_path: Path) -> None:
    """No long-term keys anywhere yet: no source could be accepted, so init says how to add
    them, asks nothing, writes nothing and exits 2 (it used to take `default` anyway)."""
    env = sandbox(tmp_path, credentials="", config="")
    status, out = init(env, "", SERIAL, "", "", "", "y")
    assert status == 2
    assert out.splitlines()[1:] == [
        "credd init: no profile with long-term keys in ~/.aws/credentials yet: add them with"
        " `aws configure` or `credctl import --csv FILE`, then run `credd init` again",
        "nothing was written",
    ]
    assert not policy_file(env).parent.exists()


def test_a_problem_in_the_credentials_file_is_shown_and_nothing_is_installed(
    tmp_path: Path,
) -> None:
    """A duplicate [ops] section: the summary and credd check's problem are shown, the
    service question is not asked, the policy is written and init exits 2."""
    env = sandbox(tmp_path, credentials=CREDENTIALS_TEXT + "[ops]\nregion = x\n")
    status, out = init(env, *DEFAULTS[:5])
    assert status == 2, out
    assert "section [ops] appears twice" in out
    assert "user service" not in out
    assert "Fix the problems above" in out
    assert policy_file(env).exists()


def test_ctrl_c_ends_the_line_and_says_nothing_was_written(tmp_path: Path) -> None:
    """Ctrl-C at a question on a real terminal: the next output starts on a new line (the
    shell's prompt is not left after the question), init says nothing was written, exits
    130, and no policy or directory is made."""
    env = sandbox(tmp_path)
    term = Terminal([CREDD, "init"], env)
    try:
        term.expect("Source profile [default]: ")
        os.write(term.fd, b"\x03")
        status = term.finish()
    except BaseException:
        term.kill()
        raise
    assert status == 130, term.text()
    after = term.text().split("Source profile [default]: ", 1)[1]
    assert after.replace("^C", "").startswith("\r\ncredd init: interrupted; nothing was written")
    assert not policy_file(env).parent.exists()


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_the_policy_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """Under a umask of 0002 (which would leave files group-writable) the policy is 0600 in
    a 0700 directory, ~/.config made for it included, and `credd check` trusts it; a
    replaced policy is 0600 again even if the old one was 0666."""
    env = sandbox(tmp_path)
    old = os.umask(0o002)
    try:
        status, out = init(env, *DEFAULTS)
        assert status == 0, out
        path = policy_file(env)
        path.chmod(0o666)
        status, out = init(env, "y", *DEFAULTS)
    finally:
        os.umask(old)
    assert status == 0, out
    assert (_mode(path), _mode(path.parent), _mode(path.parent.parent)) == (0o600, 0o700, 0o700)
    assert "session-alice (mfa-session)" in out  # credd check accepted it


def test_an_existing_directory_is_not_loosened(tmp_path: Path) -> None:
    """A policy directory that exists keeps its own mode (0711 here): init never loosens it."""
    env = sandbox(tmp_path)
    directory = policy_file(env).parent
    directory.mkdir(parents=True)
    directory.chmod(0o711)
    status, out = init(env, *DEFAULTS)
    assert status == 0, out
    assert (_mode(directory), _mode(policy_file(env))) == (0o711, 0o600)


@pytest.mark.parametrize("setup", ["group-writable", "another uid"])
def test_a_directory_someone_else_could_write_is_refused_before_any_question(
    tmp_path: Path, setup: str
) -> None:
    """credd would not trust a policy there: init says why and how to fix it, asks
    nothing, writes nothing and exits 2; the directory is left as it was."""
    env = sandbox(tmp_path)
    directory = policy_file(env).parent
    directory.mkdir(parents=True)
    if setup == "group-writable":
        directory.chmod(0o770)
        fragments = ["writable by group (mode 0770)", f"`chmod go-w {directory}`"]
    else:
        directory.chmod(0o755)
        os.chown(directory, 4242, 4242)
        fragments = ["owned by uid 4242"]
    before = directory.stat()
    status, out = init(env, *DEFAULTS)
    assert status == 2
    assert f"credd init: {directory}, the policy's directory," in out
    assert all(fragment in out for fragment in fragments), out
    assert "Source profile" not in out
    assert "nothing was written" in out
    assert os.listdir(directory) == []
    after = directory.stat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)


def test_init_offers_to_move_plaintext_keys_into_the_keyring(
    tmp_path: Path, secret_service_env: SecretService
) -> None:
    """With a keyring there, init asks (after the roles, before the install) whether to move
    the source's keys; a yes moves them once the policy is written, and check is happy."""
    env = sandbox(tmp_path)
    credentials = Path(env["AWS_SHARED_CREDENTIALS_FILE"])
    status, out = init(env, "", "", "", "", "", "y", "")
    assert status == 0, out
    assert "Move the long-term keys of default out of ~/.aws/credentials into the OS keyring" in out
    assert "moved the keys of default (****LT01) into the keyring" in out
    checked, problems = io.StringIO(), io.StringIO()
    assert run_check(Path(paths.policy_path(env)), env, checked, problems) == 0
    assert "keys in the keyring: default" in checked.getvalue() and problems.getvalue() == ""
    assert "CANARYinitSecretDefault" not in credentials.read_text() + out
    assert "CANARYinitSecretOps" in credentials.read_text()  # only the source's keys move
    held = Keyring().get("default")
    assert held is not None and held.access_key_id == "AKIAEXAMPLEDEFAULT01"


def test_init_leaves_the_keys_where_they_are_on_a_no(
    tmp_path: Path, secret_service_env: SecretService
) -> None:
    """The default is no: nothing moves."""
    env = sandbox(tmp_path)
    status, out = init(env, "", "", "", "", "", "", "")
    assert status == 0, out
    assert Keyring().get("default") is None
    assert Path(env["AWS_SHARED_CREDENTIALS_FILE"]).read_text() == CREDENTIALS_TEXT
