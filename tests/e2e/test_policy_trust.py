"""A policy that someone else could change is not trusted (SPEC.md "Files and locations").

Each owner and mode of the policy file and its directory, through the real `credd check`
and `credd run`: exit 2, a message naming the path, the owner or mode at fault and the
fix, and never the policy's content. A reload of the running daemon keeps the policy in
force (`credctl reload` exits 2, SIGHUP logs why). The private policy is accepted.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.daemon import CREDD, MFA_SERIAL, POLICY_TEXT, Sandbox
from support.fake_sts import FakeSts

pytestmark = pytest.mark.slow

CANARY = "CANARY-policy-content"
OTHER_UID = 4242


@pytest.fixture
def box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A sandbox whose policy (0600 in a 0700 directory) carries a canary comment."""
    sandbox = Sandbox(tmp_path, fake_sts.url, policy_text=POLICY_TEXT + f"# {CANARY}\n")
    yield sandbox
    sandbox.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _moved(box: Sandbox, *, mode: int, dir_mode: int) -> tuple[Path, Path]:
    """The policy moved to `elsewhere/` (`dir_mode`, the file `mode`) and linked from its
    usual place; returns (link, target)."""
    elsewhere = box.root / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "policy.yaml"
    box.policy.rename(target)
    target.chmod(mode)
    elsewhere.chmod(dir_mode)
    box.policy.symlink_to(target)
    return box.policy, target


def group_writable_file(box: Sandbox) -> tuple[Path, list[str]]:
    box.policy.chmod(0o620)
    p = box.policy
    return p, [f"{p} is writable by group (mode 0620)", f"run `chmod go-w {p}`"]


def world_writable_file(box: Sandbox) -> tuple[Path, list[str]]:
    box.policy.chmod(0o602)
    p = box.policy
    return p, [f"{p} is writable by others (mode 0602)", f"run `chmod go-w {p}`"]


def group_writable_directory(box: Sandbox) -> tuple[Path, list[str]]:
    d = box.policy.parent
    d.chmod(0o770)
    return box.policy, [
        f"{d}, the policy's directory, is writable by group (mode 0770)",
        f"run `chmod go-w {d}`",
    ]


def world_writable_directory(box: Sandbox) -> tuple[Path, list[str]]:
    d = box.policy.parent
    d.chmod(0o777)
    return box.policy, [
        f"{d}, the policy's directory, is writable by group and others (mode 0777)",
        f"run `chmod go-w {d}`",
    ]


def file_of_another_uid(box: Sandbox) -> tuple[Path, list[str]]:
    os.chown(box.policy, OTHER_UID, OTHER_UID)
    p = box.policy
    return p, [
        f"{p} is owned by uid {OTHER_UID}, not by you (uid {os.getuid()}) or root",
        f"`sudo chown {os.getuid()} {p}`",
    ]


def directory_of_another_uid(box: Sandbox) -> tuple[Path, list[str]]:
    d = box.policy.parent
    os.chown(d, OTHER_UID, OTHER_UID)
    return box.policy, [f"{d}, the policy's directory, is owned by uid {OTHER_UID}"]


def symlink_to_a_world_writable_file(box: Sandbox) -> tuple[Path, list[str]]:
    link, target = _moved(box, mode=0o666, dir_mode=0o700)
    return link, [
        f"{target} (the target of {link}) is writable by group and others (mode 0666)",
        f"run `chmod go-w {target}`",
    ]


def symlink_into_a_world_writable_directory(box: Sandbox) -> tuple[Path, list[str]]:
    link, target = _moved(box, mode=0o600, dir_mode=0o777)
    return link, [
        f"{target.parent}, the policy's directory, is writable by group and others (mode 0777)",
        f"run `chmod go-w {target.parent}`",
    ]


def sticky_world_writable_directory(box: Sandbox) -> tuple[Path, list[str]]:
    d = box.policy.parent
    d.chmod(0o1777)
    return box.policy, [
        f"{d}, the policy's directory, is writable by group and others (mode 1777)",
        "keep the policy in a directory only you can write",
    ]


UNTRUSTED: list[Callable[[Sandbox], tuple[Path, list[str]]]] = [
    group_writable_file,
    world_writable_file,
    group_writable_directory,
    world_writable_directory,
    file_of_another_uid,
    directory_of_another_uid,
    symlink_to_a_world_writable_file,
    symlink_into_a_world_writable_directory,
    sticky_world_writable_directory,
]


@pytest.mark.parametrize("setup", UNTRUSTED, ids=lambda f: f.__name__)
def test_check_and_run_refuse_a_policy_someone_else_could_change(
    box: Sandbox, setup: Callable[[Sandbox], tuple[Path, list[str]]]
) -> None:
    """`credd check` and `credd run` both exit 2 with the path, what is wrong and the fix;
    the content is never quoted, no socket is made, and modes and owners are left alone."""
    policy, fragments = setup(box)
    before = {p: (p.lstat().st_mode, p.lstat().st_uid) for p in (policy, policy.resolve())}
    before |= {p.parent: (p.parent.stat().st_mode, p.parent.stat().st_uid) for p in before}
    procs = [
        subprocess.Popen(
            [CREDD, command, "--policy", str(policy)],
            env=box.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in ("check", "run")
    ]
    for command, proc in zip(("check", "run"), procs, strict=True):
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 2, f"credd {command}: {out}{err}"
        assert err.startswith(f"{policy}: policy is invalid ("), err
        for fragment in fragments:
            assert fragment in err, f"credd {command}: {fragment!r} not in {err}"
        assert CANARY not in out + err
        assert "session-alice" not in out + err
    assert not box.socket.exists()
    after = {p: (p.lstat().st_mode, p.lstat().st_uid) for p in (policy, policy.resolve())}
    after |= {p.parent: (p.parent.stat().st_mode, p.parent.stat().st_uid) for p in after}
    assert after == before


def _check(box: Sandbox, policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDD, "check", "--policy", str(policy)],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_private_policy_is_accepted_by_check_and_run(box: Sandbox) -> None:
    """0600 in 0700 (as `credd init` writes it): check exits 0 and run serves it; so are
    0644 in 0755 (only write matters) and a link to a private file in a private place."""
    assert (_mode(box.policy), _mode(box.policy.parent)) == (0o600, 0o700)
    done = _check(box, box.policy)
    assert done.returncode == 0, done.stderr
    box.start("--policy", str(box.policy))
    assert set(box.states()) == {"session-alice", "prod-admin", "prod-ro"}
    box.stop()

    box.policy.chmod(0o644)
    box.policy.parent.chmod(0o755)
    assert _check(box, box.policy).returncode == 0
    link, _ = _moved(box, mode=0o600, dir_mode=0o700)
    done = _check(box, link)
    assert done.returncode == 0, done.stderr


def test_a_reload_keeps_the_policy_in_force_while_someone_else_could_change_it(
    box: Sandbox,
) -> None:
    """The running daemon is asked to reload a policy that gained a profile but became
    world-writable, then sits in a world-writable directory: `credctl reload` exits 2
    naming the path, the mode and the fix, SIGHUP logs the refusal, the profile is not
    added and the daemon keeps serving; once private again, the reload applies it."""
    proc = box.start()
    box.policy.write_text(
        box.policy_text + f"  extra:\n    source_profile: default\n    mfa_serial: {MFA_SERIAL}\n"
    )
    box.policy.chmod(0o666)
    done = box.ctl("reload")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{box.policy} is writable by group and others (mode 0666)" in done.stderr
    assert f"run `chmod go-w {box.policy}`" in done.stderr
    assert CANARY not in done.stdout + done.stderr
    assert "extra" not in box.states()

    box.policy.chmod(0o600)
    box.policy.parent.chmod(0o777)
    done = box.ctl("reload")
    assert done.returncode == 2
    assert f"{box.policy.parent}, the policy's directory, is writable" in done.stderr
    proc.send_signal(signal.SIGHUP)
    refused = "reload refused, keeping the policy in force"
    _wait(lambda: box.log_text().count(refused) == 3, box)
    assert "mode 0777" in box.log_text().split(refused)[-1]
    assert CANARY not in box.log_text()
    assert "extra" not in box.states()
    assert proc.poll() is None

    box.policy.parent.chmod(0o700)
    done = box.ctl("reload")
    assert done.returncode == 0, done.stderr
    assert "extra" in box.states()


def _wait(condition: Callable[[], bool], box: Sandbox, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds (or fail with the daemon's log)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; log:\n{box.log_text()}")
        time.sleep(0.05)
