"""Shell completion, run in the real shells, installed by the README's own lines.

bash: bash-completion's loader finds the script where the README's line put it, and the
function it registers is called as on a TAB (non-interactively); fish: `complete -C`,
which runs its completion as a TAB would; zsh: an interactive zsh in a tmux pane (a
pty) with TAB pressed. Profile names come from the running credd (which still holds
the names it started with after the policy on disk changed), else from the policy.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import BIN, Sandbox
from support.fake_sts import FakeSts

from credd.cmdline import SHELLS, Program
from credd.completion import script
from credd.ctl.grammar import CREDCTL as CREDCTL_TABLE
from credd.grammar import CREDD as CREDD_TABLE

pytestmark = pytest.mark.slow

README = Path(__file__).resolve().parents[1] / "README.md"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
DAEMON_NAMES = ["session-alice", "prod-admin", "prod-ro"]
# What the policy on disk says once the daemon has started: only a daemon that is not
# running leaves completion to it.
LATER_POLICY = "version: 1\nprofiles:\n  from-policy:\n    source_profile: default\n"
END = "@@END@@"


def readme_line(shell: str) -> str:
    """The README's one line that installs the completion scripts for `shell`."""
    lines = [line for line in README.read_text().splitlines() if f"completion {shell} >" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A sandboxed HOME and socket; credd not started. PATH leads to this venv's commands."""
    sandbox = Sandbox(tmp_path, fake_sts.url, log_level="info")
    sandbox.extra_env["PATH"] = f"{BIN}:{sandbox.env['PATH']}"
    yield sandbox
    sandbox.close()


def start_then_change_policy(box: Sandbox) -> None:
    """credd runs with the sandbox's three profiles; the policy on disk then names another."""
    box.start()
    box.policy.write_text(LATER_POLICY)


def install(box: Sandbox, shell: str) -> None:
    """Run the README's line for `shell` in that shell, in the sandbox's HOME."""
    done = subprocess.run(
        [shell, "-c", readme_line(shell)], env=box.env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("table", [CREDD_TABLE, CREDCTL_TABLE], ids=lambda t: t.name)
def test_completion_command_prints_the_generated_script(shell: str, table: Program) -> None:
    """`credd completion SHELL` and `credctl completion SHELL` print the script the table
    generates, exit 0; another shell's name exits 2."""
    program = str(BIN / table.name)
    done = subprocess.run([program, "completion", shell], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == script(table, shell)
    wrong = subprocess.run([program, "completion", "tcsh"], capture_output=True, text=True)
    assert wrong.returncode == 2
    assert "invalid choice: 'tcsh'" in wrong.stderr


def bash_complete(box: Sandbox, lines: list[list[str]]) -> list[list[str]]:
    """Each line's candidates, as bash with bash-completion offers them on a TAB."""
    driver = f"""
source {BASH_COMPLETION}
t() {{
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${{#COMP_LINE}}
    COMPREPLY=()
    complete -p "$1" >/dev/null 2>&1 || _completion_loader "$1"
    local spec fn
    spec=$(complete -p "$1") && fn=${{spec#*-F }} && fn=${{fn%% *}}
    "$fn" "$1" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
    printf '%s\\n' "${{COMPREPLY[@]}}" {END}
}}
""" + "\n".join("t " + " ".join(shlex.quote(w) for w in line) for line in lines)
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [sorted(filter(None, part.split("\n"))) for part in done.stdout.split(END + "\n")[:-1]]


def test_bash_completes_commands_options_values_and_profiles(box: Sandbox) -> None:
    """bash, as installed by the README's line: commands, options (common ones on either
    side), choices, files, and profile names from credd, then from the policy."""
    install(box, "bash")
    start_then_change_policy(box)
    elsewhere = str(box.root / "nothing.sock")
    socket = str(box.socket)
    given = box.root / "given-policy.yaml"
    given.write_text(LATER_POLICY)
    cases = {
        ("credctl", "st"): ["status"],
        ("credctl", ""): sorted(c.name for c in CREDCTL_TABLE.commands),
        ("credctl", "status", "--s"): ["--short", "--socket"],
        ("credctl", "--j"): ["--json"],
        ("credctl", "completion", ""): ["bash", "fish", "zsh"],
        ("credd", "install", ""): ["launchd", "systemd"],
        ("credd", "run", "--log-level", ""): ["debug", "error", "info", "warning"],
        ("credd", "run", "--log-level", "=", "w"): ["warning"],
        ("credd", "ch"): ["check"],
        ("credctl", "token", "--profile", ""): sorted(DAEMON_NAMES),
        ("credctl", "refresh", "prod-admin", "prod-"): ["prod-admin", "prod-ro"],
        ("credctl", "exec", "prod-admin", "--", "credc"): ["credctl"],
        ("credd", "check", "--policy", str(box.root / "given-")): [str(given)],
    }
    found = bash_complete(box, [list(words) for words in cases])
    assert dict(zip(cases, found, strict=True)) == cases

    # The --socket typed on the line is where the names come from.
    box.extra_env["CREDD_SOCKET"] = elsewhere
    lines = [["credctl", "status", "--socket", socket, ""], ["credctl", "status", ""]]
    assert bash_complete(box, lines) == [sorted(DAEMON_NAMES), ["from-policy"]]

    box.extra_env.pop("CREDD_SOCKET")
    assert box.stop() == 0
    assert bash_complete(box, [["credctl", "credential-process", ""]]) == [["from-policy"]]


def fish_complete(box: Sandbox, lines: list[str]) -> list[list[str]]:
    """Each command line's candidates, as fish's own completion offers them."""
    done = subprocess.run(
        ["fish", "-c", f'for l in $argv; complete -C"$l"; echo {END}; end', "--", *lines],
        env={**box.env, "XDG_CONFIG_HOME": str(box.home / ".config")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    parts = done.stdout.split(END + "\n")[:-1]
    return [sorted(c.split("\t")[0] for c in part.splitlines()) for part in parts]


def test_fish_completes_commands_options_values_and_profiles(box: Sandbox) -> None:
    """fish, as installed by the README's line: the same, with descriptions."""
    install(box, "fish")
    start_then_change_policy(box)
    cases = {
        "credctl st": ["status"],
        "credctl status --s": ["--short", "--socket"],
        "credctl --socket /x status --j": ["--json"],
        "credctl completion ": ["bash", "fish", "zsh"],
        "credd install ": ["launchd", "systemd"],
        "credd run --log-level=w": ["--log-level=warning"],
        "credctl token --profile ": sorted(DAEMON_NAMES),
        "credctl status prod-": ["prod-admin", "prod-ro"],
        "credctl exec prod-admin -- credc": ["credctl"],
    }
    assert dict(zip(cases, fish_complete(box, list(cases)), strict=True)) == cases
    described = subprocess.run(
        ["fish", "-c", 'complete -C"credctl to"'],
        env={**box.env, "XDG_CONFIG_HOME": str(box.home / ".config")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert described.stdout == "token\tfeed a 6-digit MFA code\n"

    lines = [f"credctl --socket {box.socket} status ", "credctl status "]
    box.extra_env["CREDD_SOCKET"] = str(box.root / "nothing.sock")
    assert fish_complete(box, lines) == [sorted(DAEMON_NAMES), ["from-policy"]]
    box.extra_env.pop("CREDD_SOCKET")
    assert box.stop() == 0
    assert fish_complete(box, ["credctl refresh "]) == [["from-policy"]]


class Pane:
    """An interactive zsh in a private tmux server: a real terminal, keys typed into it."""

    def __init__(self, box: Sandbox) -> None:
        self.socket = box.sockdir / "tmux"
        self.env = {**box.env, "TERM": "xterm-256color", "ZDOTDIR": str(box.home)}
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", "zsh -i")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J")

    def wait_for(self, *texts: str, timeout: float = 20.0) -> str:
        """Poll until every text shows in the pane (or fail, showing it)."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"the pane never showed {texts}:\n{screen}")

    def tab(self, typed: str) -> None:
        """Clear the line, type `typed`, press TAB."""
        self.tmux("send-keys", "C-u", "C-l")
        self.tmux("send-keys", "-l", typed)
        self.tmux("send-keys", "Tab")

    def close(self) -> None:
        self.tmux("kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_zsh_completes_commands_options_values_and_profiles(box: Sandbox) -> None:
    """zsh on a terminal, as installed by the README's line and its fpath note: TAB
    completes a command, lists options and commands with their descriptions, offers the
    choices, and the profile names from credd, then from the policy."""
    (box.home / ".zshrc").write_text(
        "fpath=(~/.zfunc $fpath)\nautoload -Uz compinit && compinit -u\nPROMPT='%% '\n"
    )
    install(box, "zsh")
    start_then_change_policy(box)
    pane = Pane(box)
    try:
        pane.wait_for("% ")
        pane.tab("credctl tok")
        pane.wait_for("% credctl token ")
        pane.tab("credctl status --")
        pane.wait_for("--short", "-- one short line, for shell prompts", "--socket", "--json")
        pane.tab("credctl ")
        pane.wait_for("credential-process", "-- feed a 6-digit MFA code", "completion")
        pane.tab("credd install ")
        pane.wait_for("launchd", "systemd")
        pane.tab("credctl token --profile ")
        pane.wait_for(*DAEMON_NAMES)
        assert box.stop() == 0
        pane.tab("credctl exec ")
        pane.wait_for("% credctl exec from-policy ")
    finally:
        pane.close()
