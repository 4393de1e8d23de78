"""`credctl prompt` on real terminals: two clients in tmux panes against a real `credd run`.

Both see which profile and device need a code; a code typed in one renews the
session; both see it resolved and both keep waiting for the next request.
Skipped where tmux is not installed.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon import CREDCTL, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


class Tmux:
    """A private tmux server (its own socket) whose panes run `credctl prompt`."""

    def __init__(self, box: Sandbox) -> None:
        self.socket = box.sockdir / "tmux"
        self.env = {**box.env, "TERM": "xterm-256color"}
        self.panes: list[str] = []

    def tmux(self, *args: str) -> str:
        """Run a tmux command against this server; its stdout."""
        done = subprocess.run(
            ["tmux", "-S", str(self.socket), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def start(self, command: str, count: int) -> None:
        """`count` panes, each running `command`."""
        self.panes.append(
            self.tmux(
                "new-session", "-d", "-P", "-F", "#{pane_id}", "-x", "160", "-y", "40", command
            ).strip()
        )
        self.tmux("set-option", "-g", "remain-on-exit", "on")
        for _ in range(count - 1):
            self.panes.append(
                self.tmux("split-window", "-d", "-P", "-F", "#{pane_id}", command).strip()
            )

    def screen(self, pane: str) -> str:
        """What the pane shows now (joined lines, with scrollback)."""
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", pane)

    def wait_for(self, pane: str, text: str, *, count: int = 1, timeout: float = 20.0) -> str:
        """Poll until `text` appears `count` times in the pane."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen(pane)
            if screen.count(text) >= count:
                return screen
            time.sleep(0.05)
        raise AssertionError(f"pane {pane} never showed {text!r} x{count}:\n{screen}")

    def type(self, pane: str, line: str) -> None:
        """Type a line and Enter in the pane."""
        self.tmux("send-keys", "-t", pane, "-l", line)
        self.tmux("send-keys", "-t", pane, "Enter")

    def alive(self, pane: str) -> bool:
        """The pane's program is still running."""
        return self.tmux("display-message", "-p", "-t", pane, "#{pane_dead}").strip() == "0"

    def kill(self) -> None:
        """End this tmux server and its panes."""
        subprocess.run(
            ["tmux", "-S", str(self.socket), "kill-server"],
            env=self.env,
            capture_output=True,
            timeout=10,
            check=False,
        )


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A real credd against the fake STS (any six digits, each usable once)."""
    sandbox = Sandbox(tmp_path, fake_sts.url)
    yield sandbox
    sandbox.close()


@pytest.fixture
def tmux(box: Sandbox) -> Iterator[Tmux]:
    """The tmux server, killed afterwards."""
    server = Tmux(box)
    yield server
    server.kill()


def test_two_prompts_both_see_the_request_and_its_resolution(
    box: Sandbox, tmux: Tmux, fake_sts: FakeSts
) -> None:
    """Both panes show the profile and its device; a code typed in the first renews it;
    both show it renewed and keep running; the next request reaches both again, and the
    second pane can answer it."""
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})
    tmux.start(CREDCTL + " prompt", count=2)
    first, second = tmux.panes

    for pane in (first, second):
        screen = tmux.wait_for(pane, "MFA code for session-alice: ")
        assert MFA_SERIAL in screen

    tmux.type(first, "135246")
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh"})
    tmux.wait_for(first, "session-alice renewed")
    tmux.wait_for(second, "session-alice renewed")
    assert [c.code for c in fake_sts.calls_for("GetSessionToken")] == ["135246"]
    assert tmux.alive(first)
    assert tmux.alive(second)

    done = box.ctl("refresh", "session-alice")
    assert done.returncode == 0, done.stderr
    for pane in (first, second):
        tmux.wait_for(pane, "MFA code for session-alice: ", count=2)
    tmux.type(second, "975310")
    box.wait_states({"session-alice": "fresh"})
    for pane in (first, second):
        tmux.wait_for(pane, "session-alice renewed", count=2)
    assert tmux.alive(first)
    assert tmux.alive(second)
    assert "135246" not in tmux.screen(second), "a code typed in one pane never shows in another"


def test_renewed_has_no_nested_brackets_and_ctrl_c_ends_the_line(box: Sandbox, tmux: Tmux) -> None:
    """The renewal reads `renewed; expires ... (in ...)`, never `(expires ... (in ...))`;
    Ctrl-C at the question ends its line, so what the shell prints next starts a line of
    its own, and credctl prompt exits 0."""
    box.start()
    box.wait_states({"session-alice": "awaiting-code"})
    tmux.start(CREDCTL + ' prompt; printf "AFTER exit=%s\\n" "$?"', count=1)
    [pane] = tmux.panes
    tmux.wait_for(pane, "MFA code for session-alice: ")
    tmux.type(pane, "135246")
    screen = tmux.wait_for(pane, "session-alice renewed")
    line = next(x for x in screen.splitlines() if "session-alice renewed" in x)
    assert line.startswith("session-alice renewed; expires "), line
    assert "((" not in line and "))" not in line and line.count("(") == 1
    box.ctl("refresh", "session-alice")
    tmux.wait_for(pane, "MFA code for session-alice: ", count=2)
    tmux.tmux("send-keys", "-t", pane, "C-c")
    screen = tmux.wait_for(pane, "AFTER exit=")
    assert "AFTER exit=0" in [x.strip() for x in screen.splitlines()], screen
