"""`code_command` and `notify` (credd/daemon/codesources.py), with small fake commands in tmp_path.

Every outcome of a code command that is not exactly six ASCII digits is None
plus one warning naming the profile and the reason, and never the output.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from credd.daemon.codesources import CodeSources, notify_argv
from credd.policy import Profile
from credd.states import Kind

PY = sys.executable
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
# Canary: printed by fake commands; must never reach a log line.
CANARY = "CANARYsecretPrintedByMistake"


def profile(*, code_command: list[str] | None = None, notify: list[str] | None = None) -> Profile:
    """An MFA session profile with the given commands."""
    return Profile(
        name="session-alice",
        kind=Kind.MFA_SESSION,
        source_profile="default",
        mfa_serial=SERIAL,
        role_arn=None,
        role_session_name=None,
        external_id=None,
        duration=43200,
        requested_duration=43200,
        refresh_before=900,
        region="us-east-1",
        code_command=tuple(code_command) if code_command else None,
        notify=tuple(notify) if notify else None,
        source_is_managed=False,
    )


def py(code: str) -> list[str]:
    """An argv running `code` with this interpreter."""
    return [PY, "-c", code]


def run_code_command(argv: list[str], **timeouts: float) -> str | None:
    """`CodeSources.code_needed` for a profile whose code_command is `argv`."""
    sources = CodeSources(**timeouts)
    return asyncio.run(sources.code_needed(profile(code_command=argv), "a code is needed"))


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The warnings credd.daemon.codesources logged."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "credd.daemon.codesources" and r.levelno == logging.WARNING
    ]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a container's pid 1 may not reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still alive after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


def test_six_digits_printed_are_the_code(caplog: pytest.LogCaptureFixture) -> None:
    """ykman and `op item get --otp` print the code and a newline: whitespace is stripped."""
    caplog.set_level(logging.DEBUG, logger="credd.daemon.codesources")
    code = run_code_command(py("print('  012345  ')"))
    assert code == "012345"
    assert not warnings(caplog)
    assert all("012345" not in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("printed", "reason"),
    [
        ("12345", "not exactly 6 digits"),
        ("1234567", "not exactly 6 digits"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666", "not exactly 6 digits"),  # Arabic-Indic
        ("\uff11\uff12\uff13\uff14\uff15\uff16", "not exactly 6 digits"),  # fullwidth
        ("code: 123456", "not exactly 6 digits"),
        ("123456\n654321", "not exactly 6 digits"),
        (f"123456 {CANARY}", "not exactly 6 digits"),
        ("", "printed nothing"),
        ("   \n", "printed nothing"),
    ],
    ids=[
        "5-digits",
        "7-digits",
        "arabic-indic",
        "fullwidth",
        "extra-text",
        "two-codes",
        "canary",
        "empty",
        "blank",
    ],
)
def test_anything_but_six_ascii_digits_is_no_code(
    caplog: pytest.LogCaptureFixture, printed: str, reason: str
) -> None:
    """Not exactly `[0-9]{6}` (after stripping): None, and a warning naming the profile and
    the reason but never the output (it may be a code or a secret)."""
    caplog.set_level(logging.DEBUG, logger="credd.daemon.codesources")
    script = f"import sys; sys.stdout.buffer.write({printed.encode()!r})"
    assert run_code_command(py(script)) is None
    [warning] = warnings(caplog)
    assert "session-alice" in warning
    assert reason in warning
    assert "asking over the socket" in warning
    log_text = caplog.text
    for fragment in (CANARY, "12345", "\u0661\u0662", "\uff11", "code: 1"):
        assert fragment not in log_text


def test_a_non_zero_exit_is_no_code_even_with_six_digits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command that fails is not trusted, whatever it printed; its stderr is never logged."""
    caplog.set_level(logging.DEBUG, logger="credd.daemon.codesources")
    script = f"import sys; print('123456'); print({CANARY!r}, file=sys.stderr); sys.exit(3)"
    assert run_code_command(py(script)) is None
    [warning] = warnings(caplog)
    assert "exited with status 3" in warning
    assert "123456" not in caplog.text
    assert CANARY not in caplog.text


def test_a_missing_program_is_no_code(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    """A code_command whose program does not exist: None and a warning, no exception."""
    missing = str(tmp_path / "no-such-ykman")
    assert run_code_command([missing, "oath", "accounts", "code"]) is None
    [warning] = warnings(caplog)
    assert "no-such-ykman" in warning
    assert "cannot be started" in warning


def test_a_hanging_command_is_killed_with_its_children(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Past the timeout the whole process group is killed (a shell script's children too):
    None, a warning, and no process left behind."""
    pids = tmp_path / "pids"
    script = tmp_path / "hang.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"sleep 300 &\necho $$ $! > {pids}\n"
        "echo 123\n"  # a partial answer before hanging is still no code
        "wait\n"
    )
    script.chmod(0o755)
    assert run_code_command([str(script)], code_timeout=0.5) is None
    [warning] = warnings(caplog)
    assert "did not finish" in warning
    assert "killed" in warning
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    assert wait_gone(started) == []


def test_a_child_holding_stdout_open_does_not_hold_up_the_code(tmp_path: Path) -> None:
    """A command that prints the code and exits, leaving a child with stdout open (a helper
    daemon), still gives its code: no waiting for the child's EOF until the timeout."""
    script = tmp_path / "code.sh"
    pid_file = tmp_path / "pid"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\necho 246810\n")
    script.chmod(0o755)
    try:
        assert run_code_command([str(script)], code_timeout=30) == "246810"
    finally:
        os.kill(int(pid_file.read_text()), 9)


def test_too_much_output_is_no_code(caplog: pytest.LogCaptureFixture) -> None:
    """Output beyond the bound ends the command; only so much is ever read."""
    script = "import sys\nwhile True: sys.stdout.write('1' * 65536)"
    assert run_code_command(py(script), max_output=4096) is None
    [warning] = warnings(caplog)
    assert "more than 4096 bytes" in warning


def test_stdin_is_empty_never_the_daemons(tmp_path: Path) -> None:
    """The command reads /dev/null on stdin: it can never wait on, or read, credd's input."""
    script = "import sys; data = sys.stdin.read(); print('135790' if data == '' else 'x')"
    assert run_code_command(py(script), code_timeout=10) == "135790"


def test_the_argv_is_never_given_to_a_shell(tmp_path: Path) -> None:
    """Arguments reach the program as they are: `;`, `$HOME` and quotes are not interpreted."""
    record = tmp_path / "argv.json"
    script = (
        f"import json, sys; json.dump(sys.argv[1:], open({str(record)!r}, 'w')); print('112233')"
    )
    args = ["; echo 999999", "$HOME", "'quoted'", "{profile}"]
    assert run_code_command([*py(script), *args]) == "112233"
    assert json.loads(record.read_text()) == args


def test_notify_gets_its_placeholders_filled_in(tmp_path: Path) -> None:
    """`{profile}`, `{mfa_serial}` and `{message}` are filled in each argument; other braces
    stay; a message that itself holds `{profile}` is not expanded again."""
    record = tmp_path / "argv.json"
    script = f"import json, sys; json.dump(sys.argv[1:], open({str(record)!r}, 'w'))"
    argv = [
        *py(script),
        "{profile}",
        "device {mfa_serial}!",
        "{message}",
        "{other} {} {0}",
        "{{profile}}",
    ]
    message = "credd needs an MFA code for {profile} (literally)"
    sources = CodeSources(notify_timeout=10)

    async def scenario() -> str | None:
        code = await sources.code_needed(profile(notify=argv), message)
        await sources.wait_notifications()
        return code

    assert asyncio.run(scenario()) is None  # no code_command: asked over the socket
    assert json.loads(record.read_text()) == [
        "session-alice",
        f"device {SERIAL}!",
        message,
        "{other} {} {0}",
        "{session-alice}",
    ]


def test_notify_argv_is_a_pure_substitution() -> None:
    """The substitution on its own: no format() semantics, no shell."""
    p = profile()
    assert notify_argv(["a{profile}b", "{mfa_serial}", "{message}"], p, "m {0}") == [
        "asession-aliceb",
        SERIAL,
        "m {0}",
    ]


@pytest.mark.parametrize(
    ("make_argv", "reason"),
    [
        (lambda tmp: [str(tmp / "no-such-notify-send"), "{message}"], "cannot be started"),
        (lambda tmp: py("import sys; sys.exit(4)"), "exited with status 4"),
        (lambda tmp: py("import time; time.sleep(300)"), "did not finish"),
    ],
    ids=["missing", "non-zero", "hangs"],
)
def test_a_failing_notifier_is_logged_once_and_never_fatal(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, make_argv: object, reason: str
) -> None:
    """A notifier that cannot start, fails or hangs (then is killed) is logged once however
    often a code is needed, and the code command still gives its code."""
    assert callable(make_argv)
    argv = make_argv(tmp_path)
    sources = CodeSources(notify_timeout=0.3)
    with_code = profile(notify=argv, code_command=py("print('424242')"))

    async def scenario() -> list[str | None]:
        codes = []
        for _ in range(3):
            codes.append(await sources.code_needed(with_code, "a code is needed"))
            await sources.wait_notifications()
        return codes

    assert asyncio.run(scenario()) == ["424242"] * 3
    notify_warnings = [w for w in warnings(caplog) if "notify command" in w]
    assert len(notify_warnings) == 1
    assert reason in notify_warnings[0]
    assert "session-alice" in notify_warnings[0]


def test_the_code_does_not_wait_for_a_slow_notifier(tmp_path: Path) -> None:
    """The notifier runs beside the code command: one still running does not hold the code
    back, and `close()` ends it (its process is gone)."""
    pid_file = tmp_path / "pid"
    slow = py(
        f"import os, pathlib, time; pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid()));"
        " time.sleep(300)"
    )
    sources = CodeSources(notify_timeout=300)
    with_code = profile(notify=slow, code_command=py("print('868686')"))

    async def scenario() -> tuple[str | None, int]:
        code = await sources.code_needed(with_code, "a code is needed")
        running = sources.notifying
        for _ in range(200):
            if pid_file.exists() and pid_file.read_text():
                break
            await asyncio.sleep(0.05)
        await sources.close()
        return code, running

    code, running = asyncio.run(scenario())
    assert code == "868686"
    assert running == 1
    assert wait_gone([int(pid_file.read_text())]) == []
