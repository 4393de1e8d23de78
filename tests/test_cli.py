"""The command lines of `credd` and `credctl`, run for real: common options before or after
the command, every command's --help, tracebacks only with --debug, and `credd install`'s
dry run and its word about another system's service manager.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from support.daemon import CREDCTL, CREDD

from credd.cmdline import Command, Program
from credd.ctl.grammar import CREDCTL as CREDCTL_TABLE
from credd.grammar import CREDD as CREDD_TABLE

PROGRAMS = {"credd": (CREDD, CREDD_TABLE), "credctl": (CREDCTL, CREDCTL_TABLE)}


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    """A HOME of the test's own; the socket and policy at paths no default would give."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "CREDD_SOCKET": str(tmp_path / "env-socket" / "credd.sock"),
        "CREDD_POLICY": str(tmp_path / "env-policy.yaml"),
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }


def run(
    program: str, *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The real `credd` or `credctl`, with nothing on stdin."""
    return subprocess.run(
        [PROGRAMS[program][0], *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what "nothing changed" is checked against."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "line",
    [
        ["--socket", "{socket}", "status"],
        ["status", "--socket", "{socket}"],
        ["--socket", "{other}", "status", "--socket", "{socket}"],
        ["status", "--json", "--socket", "{socket}"],
        ["--json", "--socket", "{socket}", "status", "--short"],
        ["token", "123456", "--socket", "{socket}"],
        ["refresh", "a", "--socket={socket}"],
        ["credential-process", "--socket", "{socket}", "admin"],
        ["exec", "admin", "--socket", "{socket}", "--", "true"],
    ],
)
def test_credctl_takes_common_options_before_or_after_the_command(
    tmp_path: Path, line: list[str]
) -> None:
    """`credctl status --socket X` is `credctl --socket X status`: the socket given (the later
    one, when given twice) is where it looks, whatever CREDD_SOCKET says."""
    env = sandbox_env(tmp_path)
    socket = str(tmp_path / "given" / "credd.sock")
    words = [w.format(socket=socket, other=str(tmp_path / "other.sock")) for w in line]
    done = run("credctl", *words, env=env)
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("credctl: error: credd is not running")
    assert done.stderr.count("\n") == 1
    assert f"{socket})" in done.stderr
    assert done.stdout == ""


def test_credd_takes_the_policy_before_or_after_the_command(tmp_path: Path) -> None:
    """`credd check --policy X` and `credd --policy X check` check X, not CREDD_POLICY's."""
    env = sandbox_env(tmp_path)
    given = tmp_path / "given.yaml"
    for words in (["check", "--policy", str(given)], ["--policy", str(given), "check"]):
        done = run("credd", *words, env=env)
        assert done.returncode == 2
        assert done.stderr.startswith(f"{given}: policy is invalid (1 problem)\n")
        assert "the file does not exist" in done.stderr
        assert env["CREDD_POLICY"] not in done.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_credd_init_writes_the_policy_given(tmp_path: Path, where: str) -> None:
    """`credd init --policy X` (refused until now) asks about X, not the default, and an input
    that ends at once writes nothing."""
    env = sandbox_env(tmp_path)
    aws = tmp_path / "home" / ".aws"
    aws.mkdir()  # a source with keys, or init stops before any question
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = x\n"
    )
    given = tmp_path / "elsewhere" / "policy.yaml"
    words = (
        ["init", "--policy", str(given)] if where == "after" else ["--policy", str(given), "init"]
    )
    before = files_under(tmp_path)
    done = run("credd", *words, env=env)
    assert done.returncode == 1, done.stderr
    assert f"credd init: writes the policy {given}" in done.stdout
    assert "nothing was written" in done.stdout
    assert files_under(tmp_path) == before


@pytest.mark.parametrize(
    ("program", "words", "message"),
    [
        ("credctl", ["--json", "reload"], "--json does not apply to `credctl reload`"),
        ("credctl", ["--socket", "/s", "import", "--csv", "x"], "--socket does not apply"),
        ("credd", ["--log-level", "debug", "check"], "--log-level does not apply to `credd check`"),
        ("credd", ["check", "--socket", "/s"], "unrecognized arguments: --socket /s"),
        ("credctl", ["status", "--short", "a", "b"], "unrecognized arguments: b"),
    ],
)
def test_a_common_option_a_command_does_not_take_is_refused(
    tmp_path: Path, program: str, words: list[str], message: str
) -> None:
    """Wherever it is written, an option the command does not use exits 2, named."""
    done = run(program, *words, env=sandbox_env(tmp_path))
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def commands_of(table: Program) -> dict[str, Command]:
    """Each command by its path, as typed (`keys list`)."""
    paths: dict[str, Command] = {}
    pending = [(c.name, c) for c in table.commands]
    while pending:
        path, command = pending.pop(0)
        paths[path] = command
        pending += [(f"{path} {c.name}", c) for c in command.commands]
    return paths


HELP_CASES = [
    (program, path) for program, (_, table) in PROGRAMS.items() for path in commands_of(table)
]


@pytest.mark.parametrize(("program", "path"), HELP_CASES)
def test_every_command_has_help_with_real_defaults_and_exit_codes(
    tmp_path: Path, program: str, path: str
) -> None:
    """`PROGRAM COMMAND --help`: what it does (its description), the paths in force (the
    socket and policy of this environment, where the command takes them), every exit
    status of the table, and exit 0."""
    env = sandbox_env(tmp_path)
    command = commands_of(PROGRAMS[program][1])[path]
    done = run(program, *path.split(" "), "--help", env=env)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert text.startswith(f"usage: {program} {path}")
    assert " ".join(command.description.split()[:4]) in text
    if "--socket" in command.common:
        assert f"here {env['CREDD_SOCKET']}" in text
    if "--policy" in command.common:
        assert f"here {env['CREDD_POLICY']}" in text
    if command.exits:  # a group (`credd keys`) has none; its subcommands have theirs
        assert "exit status:" in text
    for code, _ in command.exits:
        assert f" {code} " in text.split("exit status:")[1]
    assert "{" not in text.replace("${", "").replace("{socket", "").replace("$fpath", ""), text


@pytest.mark.parametrize("program", ["credd", "credctl"])
def test_the_programs_help_lists_every_command_and_the_common_options(
    tmp_path: Path, program: str
) -> None:
    """`PROGRAM --help` lists the commands (a group's `--help` its subcommands), says the
    common options may follow the command, and shows the socket path in force; --version
    names the version."""
    env = sandbox_env(tmp_path)
    done = run(program, "--help", env=env)
    assert done.returncode == 0
    for command in PROGRAMS[program][1].commands:
        assert re.search(rf"\n    {command.name}\s", done.stdout), command.name
    for path, command in commands_of(PROGRAMS[program][1]).items():
        if command.commands:
            group = run(program, *path.split(), "--help", env=env)
            assert group.returncode == 0
            for sub in command.commands:
                assert re.search(rf"\n    {sub.name}\s", group.stdout), f"{path} {sub.name}"
    assert "may also come after the command" in done.stdout
    assert env["CREDD_SOCKET"] in done.stdout
    version = run(program, "--version", env=env)
    assert version.returncode == 0 and version.stdout.startswith(f"{program} 0.")


@pytest.mark.parametrize("where", [["--debug", "status"], ["status", "--debug"]])
def test_debug_before_or_after_shows_the_traceback(tmp_path: Path, where: list[str]) -> None:
    """Errors are one line; with --debug (either side of the command) the traceback too."""
    env = sandbox_env(tmp_path)
    plain = run("credctl", "status", env=env)
    assert plain.returncode == 3 and plain.stderr.count("\n") == 1
    done = run("credctl", *where, env=env)
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert "DaemonUnreachableError" in done.stderr


def test_install_dry_run_prints_the_unit_and_the_next_steps(tmp_path: Path) -> None:
    """`credd install systemd --dry-run`: stdout is exactly the unit (for `| diff`), stderr
    says where it would go and the commands to run next; nothing is written."""
    env = sandbox_env(tmp_path)
    before = files_under(tmp_path)
    done = run("credd", "install", "systemd", "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# credd: keeps AWS MFA session credentials fresh")
    assert "\nExecStart=" in done.stdout and "Then:" not in done.stdout
    unit = Path(env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "credd.service"
    assert f"credd: dry run, would write {unit}; nothing was written\nThen:\n" in done.stderr
    assert "systemctl --user daemon-reload && systemctl --user enable --now credd" in done.stderr
    assert "credctl status" in done.stderr
    assert "note:" not in done.stderr  # this machine is Linux: systemd is its manager
    assert files_under(tmp_path) == before
    assert not unit.parent.exists()


def test_install_launchd_on_linux_says_so(tmp_path: Path) -> None:
    """`credd install launchd` here (Linux) writes the plist as asked, and says that nothing
    on this system will run it; the dry run says so too and writes nothing."""
    env = sandbox_env(tmp_path)
    note = (
        "credd: note: launchd is macOS's service manager and this system is Linux: nothing "
        "here will run the LaunchAgent (on Linux, `credd install systemd`)\n"
    )
    before = files_under(tmp_path)
    dry = run("credd", "install", "launchd", "--dry-run", env=env)
    assert dry.returncode == 0
    assert dry.stderr.startswith(note)
    assert "launchctl bootstrap gui/" in dry.stderr
    assert files_under(tmp_path) == before
    done = run("credd", "install", "launchd", env=env)
    assert done.returncode == 0
    assert done.stderr == note
    plist = Path(env["HOME"]) / "Library" / "LaunchAgents" / "com.credd.agent.plist"
    assert f"wrote {plist}" in done.stdout and plist.is_file()


def test_install_systemd_on_macos_says_so(tmp_path: Path) -> None:
    """On macOS, `credd install systemd` names launchd instead (the platform passed in)."""
    import io

    from credd.commands.install import install

    out, err = io.StringIO(), io.StringIO()
    env = sandbox_env(tmp_path)
    status = install(
        "systemd", dry_run=True, force=False, env=env, out=out, err=err, platform="darwin"
    )
    assert status == 0
    assert err.getvalue().startswith(
        "credd: note: systemd is Linux's service manager and this system is macOS"
    )
    assert "`credd install launchd`" in err.getvalue()
    assert files_under(tmp_path) == {}
