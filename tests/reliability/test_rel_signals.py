"""Signals: SIGHUP with a broken policy, SIGTERM in the middle of a renewal."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from relsupport import Box, RecordingSts, role_policy, wait_until
from support.fake_sts import hang


@pytest.mark.slow
@pytest.mark.case(
    "Socket and process",
    "SIGHUP with an invalid (then a missing) policy",
    "the old policy stays in force, the refusal is logged, the daemon keeps serving",
)
def test_sighup_with_an_invalid_policy_keeps_the_old_one(make_box: Callable[..., Box]) -> None:
    """SIGHUP after the policy became invalid YAML, then after it was deleted: each time
    the log says the reload was refused, the same process keeps answering with the old
    profiles; a valid policy and one more SIGHUP then apply."""
    box = make_box(policy_text=role_policy("role-a"))
    proc = box.start()
    box.wait_states({"role-a": "fresh"})
    box.policy.write_text("version: 1\nprofiles: [\n")
    proc.send_signal(signal.SIGHUP)
    wait_until("the first refusal", lambda: box.log_text().count("reload refused") == 1)
    box.policy.unlink()
    proc.send_signal(signal.SIGHUP)
    wait_until("the second refusal", lambda: box.log_text().count("reload refused") == 2)
    assert proc.poll() is None
    assert box.states() == {"role-a": "fresh"}
    box.policy.write_text(role_policy("role-a", "role-b"))
    proc.send_signal(signal.SIGHUP)
    box.wait_states({"role-a": "fresh", "role-b": "fresh"})
    assert box.status()["daemon"]["pid"] == proc.pid


@pytest.mark.slow
@pytest.mark.case(
    "Socket and process",
    "SIGTERM during a renewal (STS hanging)",
    "exits 0 within a few seconds; the file byte-identical, no temp file, socket removed",
)
def test_sigterm_during_a_hanging_renewal_stops_promptly(
    make_box: Callable[..., Box], sts: RecordingSts
) -> None:
    """STS holds the AssumeRole for 60 s (the read timeout is the default 15 s); SIGTERM
    while the role is `refreshing` ends the daemon with status 0 well before either, the
    credentials file is exactly as it was, and the socket file is gone."""
    box = make_box(policy_text=role_policy("role-a"))
    proc = box.start()
    box.wait_states({"role-a": "fresh"})
    before = box.credentials.read_bytes()
    sts.fail_next("AssumeRole", hang(60))
    refresh = box.ctl("status")  # the daemon answers before the renewal starts
    assert refresh.returncode == 0
    import subprocess

    from support.daemon import CREDCTL

    pending = subprocess.Popen(
        [CREDCTL, "refresh", "role-a"],
        env=box.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        box.wait_states({"role-a": "refreshing"})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(8) == 0, box.log_text()[-2000:]
    finally:
        pending.kill()
        pending.wait(10)
    assert box.credentials.read_bytes() == before
    assert not box.temp_files()
    assert not box.socket.exists()
