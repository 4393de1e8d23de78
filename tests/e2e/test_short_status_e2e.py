"""`credctl status --short` against a real credd with 100 profiles: one short line.

It names only the profiles that need the person (awaiting a code, expired, error), the
most pressing first and at most two, and counts the others with the soonest expiry;
`--short PROFILE` gives one profile's time left or its state.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import CREDCTL, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts

pytestmark = pytest.mark.slow

COMMANDS_MD = Path(__file__).resolve().parents[2] / "docs" / "commands.md"

ROLES = 99
POLICY = (
    "version: 1\n"
    "defaults:\n  region: us-east-1\n"
    "profiles:\n"
    f"  session-alice:\n    source_profile: default\n    mfa_serial: {MFA_SERIAL}\n"
    + "".join(
        f"  role-{n:02}:\n    source_profile: session-alice\n"
        f"    role_arn: arn:aws:iam::123456789012:role/R{n:02}\n"
        for n in range(ROLES)
    )
)


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A real credd keeping one MFA session and 99 roles chained on it."""
    sandbox = Sandbox(tmp_path, fake_sts.url, policy_text=POLICY, log_level="info")
    yield sandbox
    sandbox.close()


def short(box: Sandbox, *args: str) -> str:
    done = box.ctl("status", "--short", *args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.count("\n") == 1
    return done.stdout.rstrip("\n")


def test_one_short_line_whatever_the_number_of_profiles(box: Sandbox) -> None:
    """Waiting for a code: the session by name, the roles never obtained counted as pending;
    once the code is in: a count and the soonest expiry. Each profile alone: its state, then
    time left."""
    box.start()
    box.wait_states({"session-alice": "awaiting-code", "role-98": "pending"})
    before = box.credentials.read_bytes()

    line = short(box)
    assert line == "session-alice awaiting-code | 99 pending", line
    assert short(box, "session-alice") == "awaiting-code"
    assert short(box, "role-07") == "pending"
    assert box.ctl("--socket", str(box.socket), "status", "--short").stdout == line + "\n"
    assert box.credentials.read_bytes() == before  # looking changes nothing

    done = box.ctl("token", "123456")
    assert done.returncode == 0, done.stderr
    box.wait_states({"session-alice": "fresh", **{f"role-{n:02}": "fresh" for n in range(ROLES)}})
    line = short(box)
    # Roles last 1h; the first of them renewed just now has the soonest expiry.
    assert re.fullmatch(r"100 ok (59m|1h00m)", line), line
    assert re.fullmatch(r"11h5\dm|12h00m", short(box, "session-alice"))
    assert re.fullmatch(r"59m|1h00m", short(box, "role-42"))

    # The recipes of docs/commands.md, in the real shells: the prompt ends with the line.
    assert re.fullmatch(r".*:.* \[100 ok (59m|1h00m)\][$#] ", prompt(box, "bash")), line
    assert re.fullmatch(r".*:.* \[100 ok (59m|1h00m)\]# ", prompt(box, "zsh"))
    assert re.fullmatch(r".* \[11h5\dm\]# ", prompt(box, "zsh", "session-alice"))
    assert box.stop() == 0
    assert " [" not in prompt(box, "bash") and " [" not in prompt(box, "zsh")


def prompt(box: Sandbox, shell: str, *args: str) -> str:
    """The prompt `shell` shows with the recipe of docs/commands.md (its `__credd_ps1`
    called with `args`), expanded as the shell expands it before each command."""
    text = COMMANDS_MD.read_text()
    function = next(line for line in text.splitlines() if line.startswith("__credd_ps1()"))
    setting = next(line for line in text.splitlines() if line.endswith(f"# {shell}"))
    if args:
        setting = setting.replace("$(__credd_ps1)", f"$(__credd_ps1 {' '.join(args)})")
    show = 'printf "%s" "${PS1@P}"' if shell == "bash" else 'print -nP -- "$PROMPT"'
    command = [shell, "--norc", "-c"] if shell == "bash" else [shell, "-f", "-c"]
    done = subprocess.run(
        [*command, f"{function}\n{setting}\n{show}"],
        env={**box.env, "PATH": f"{Path(CREDCTL).parent}:{box.env['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_short_for_a_profile_credd_does_not_keep_exits_2(box: Sandbox) -> None:
    """`--short PROFILE` with a name credd does not keep: exit 2, one line, nothing on stdout."""
    box.start()
    done = box.ctl("status", "--short", "nobody")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        "credctl: error: credd keeps no profile named nobody; `credctl status` lists them\n"
    )
