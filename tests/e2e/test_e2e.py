"""End to end: the real `credd run` against a local STS, driven by the real `credctl`.

moto's server stands in for AWS where any code is good; our fault-injecting
double (`support.fake_sts`) where AWS must say no, throttle, fail or hang.
The credentials file is read back by botocore and used by the AWS CLI.
"""

from __future__ import annotations

import configparser
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from support.daemon import AWS, CREDD, LONG_TERM_SECRET, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts, hang

pytestmark = pytest.mark.slow


@pytest.fixture
def moto_box(tmp_path: Path, moto_sts_url: str) -> Iterator[Sandbox]:
    """A sandbox pointed at moto's server."""
    box = Sandbox(tmp_path, moto_sts_url)
    yield box
    box.close()


@pytest.fixture
def fake_box(tmp_path: Path, fake_sts: FakeSts) -> Iterator[Sandbox]:
    """A sandbox pointed at the fault-injecting STS double."""
    box = Sandbox(tmp_path, fake_sts.url)
    yield box
    box.close()


def _sections(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return {name: dict(parser[name]) for name in parser.sections()}


def _unmanaged_lines(text: str) -> list[str]:
    """The file's lines up to the first section credd manages (all of which it must keep)."""
    return text.split("[session-alice]", maxsplit=1)[0].splitlines(keepends=True)


def test_a_fed_code_renews_the_session_and_its_chained_roles(moto_box: Sandbox) -> None:
    """Starts awaiting a code; `credctl token` renews it; both roles follow with no input;
    every unmanaged byte (comments, CRLF, other sections) stays as it was."""
    box = moto_box
    original = box.credentials.read_bytes()
    box.start()
    states = box.states()
    assert states["session-alice"] == "awaiting-code"
    assert states["prod-admin"] in {"expired", "pending"}

    done = box.ctl("token", "123456")
    assert done.returncode == 0, done.stderr
    assert "session-alice renewed" in done.stdout
    box.wait_states({"session-alice": "fresh", "prod-admin": "fresh", "prod-ro": "fresh"})

    written = box.credentials.read_bytes()
    assert written.startswith(original), "unmanaged bytes must be kept exactly"
    assert b"\r\n" in written[len(original) :], "the file's CRLF line endings are kept"
    sections = _sections(box.credentials)
    for name in ("session-alice", "prod-admin", "prod-ro"):
        assert sections[name]["aws_session_token"]
        assert sections[name]["x_security_token_expires"].endswith("Z")
        assert "aws_security_token" not in sections[name]
    assert sections["unrelated"]["custom_key"] == "kept"
    assert box.credentials.stat().st_mode & 0o777 == 0o600


def test_the_written_profiles_work_for_boto3_and_the_aws_cli(
    moto_box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore reads the session back, and `aws sts get-caller-identity --profile` uses it."""
    box = moto_box
    box.start()
    assert box.ctl("token", "123456").returncode == 0
    box.wait_states({"prod-admin": "fresh"})

    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(box.credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(box.root / "no-config"))
    creds = boto3.Session(profile_name="prod-admin").get_credentials()
    assert creds is not None
    assert creds.token == _sections(box.credentials)["prod-admin"]["aws_session_token"]

    env = {**box.env, "AWS_SHARED_CREDENTIALS_FILE": str(box.credentials)}
    for profile in ("session-alice", "prod-admin"):
        done = subprocess.run(
            [AWS, "sts", "get-caller-identity", "--profile", profile, "--output", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert '"Account"' in done.stdout


def test_credentials_on_disk_are_picked_up_not_renewed_again(moto_box: Sandbox) -> None:
    """A restarted daemon reads x_security_token_expires and keeps what is still fresh."""
    box = moto_box
    box.start()
    assert box.ctl("token", "123456").returncode == 0
    box.wait_states({"prod-admin": "fresh", "prod-ro": "fresh"})
    before = box.credentials.read_bytes()
    assert box.stop() == 0
    box.start()
    states = box.states()
    assert states == {"session-alice": "fresh", "prod-admin": "fresh", "prod-ro": "fresh"}
    assert box.credentials.read_bytes() == before


def test_the_cyclic_collector_is_paused_for_the_start_and_on_once_ready(
    moto_box: Sandbox,
) -> None:
    """`credd run` turns the cyclic collector off while it starts (docs/performance.md, #6)
    and must turn it back on: a daemon that never collects cycles grows without end."""
    box = moto_box
    box.start()
    deadline = time.monotonic() + 10
    while "the cyclic collector is on" not in box.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = next(
        (text for text in box.log_text().splitlines() if "the cyclic collector is on" in text),
        "",
    )
    kept = int(line.split("is on, ")[1].split()[0]) if line else 0
    assert kept > 10_000, box.log_text()  # what the start left: the imports, the policy...


def test_credd_run_has_glibcs_thread_caches_off_in_the_same_process(moto_box: Sandbox) -> None:
    """Started by hand (not by its unit, which sets it), `credd run` execs itself once with
    GLIBC_TUNABLES (docs/performance.md, #7): the pid it was started as keeps serving."""
    box = moto_box
    box.start()
    assert box.proc is not None
    status = json.loads(box.ctl("status", "--json").stdout)
    assert status["daemon"]["pid"] == box.proc.pid
    environ = Path(f"/proc/{box.proc.pid}/environ").read_bytes().split(b"\0")
    assert b"GLIBC_TUNABLES=glibc.malloc.tcache_count=0" in environ


def test_sigterm_stops_cleanly_and_removes_the_socket(moto_box: Sandbox) -> None:
    """SIGTERM: exit 0 within a few seconds, socket file gone; credctl then exits 3."""
    box = moto_box
    box.start()
    assert box.socket.exists()
    assert box.stop(signal.SIGTERM) == 0
    assert not box.socket.exists()
    done = box.ctl("status")
    assert done.returncode == 3
    assert "credd is not running" in done.stderr
    assert str(box.socket) in done.stderr


def test_a_second_daemon_exits_1_naming_the_first(moto_box: Sandbox) -> None:
    """Single instance: the second `credd run` on the same socket exits 1 with the live pid."""
    box = moto_box
    first = box.start()
    second = subprocess.run([CREDD, "run"], env=box.env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 1
    assert f"pid {first.pid}" in second.stderr
    assert box.ctl("status").returncode == 0, "the live socket is untouched"


def test_a_stale_socket_is_replaced(moto_box: Sandbox) -> None:
    """After kill -9 the socket file stays behind; the next start replaces it."""
    box = moto_box
    box.start()
    assert box.stop(signal.SIGKILL) == -signal.SIGKILL
    assert box.socket.exists()
    box.start()
    assert box.ctl("status").returncode == 0


def test_an_invalid_policy_exits_2_with_the_checks_messages(moto_box: Sandbox) -> None:
    """`credd run` on an invalid policy exits 2 at once, naming the place, like `credd check`."""
    box = moto_box
    box.policy.write_text(
        "version: 1\nprofiles:\n  x:\n    source_profile: default\n    duration: 99h\n"
    )
    run = subprocess.run([CREDD, "run"], env=box.env, capture_output=True, text=True, timeout=60)
    check = subprocess.run(
        [CREDD, "check"], env=box.env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2 and check.returncode == 2
    assert "profiles.x.duration" in run.stderr
    assert "profiles.x.duration" in check.stderr
    assert not box.socket.exists()


def test_sighup_reloads_and_an_invalid_policy_keeps_the_old(moto_box: Sandbox) -> None:
    """SIGHUP re-reads the policy; `credctl reload` of a broken one exits 2 and keeps the old."""
    box = moto_box
    proc = box.start()
    box.policy.write_text(
        box.policy_text
        + "  extra:\n    source_profile: default\n    mfa_serial: "
        + MFA_SERIAL
        + "\n"
    )
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    while "extra" not in box.states() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "extra" in box.states()

    box.policy.write_text("version: 1\nprofiles: [\n")
    done = box.ctl("reload")
    assert done.returncode == 2
    assert "line" in done.stderr and "column" in done.stderr
    proc.send_signal(signal.SIGHUP)
    assert "extra" in box.states(), "the old policy stays in force"
    assert proc.poll() is None


def test_credential_process_prints_the_aws_json_from_memory(moto_box: Sandbox) -> None:
    """credential-process: Version 1 JSON when fresh; exit 1 and one line when none is held."""
    box = moto_box
    box.start()
    empty = box.ctl("credential-process", "prod-admin")
    assert empty.returncode == 1
    assert empty.stderr.count("\n") == 1 and "credctl: error:" in empty.stderr
    assert box.ctl("token", "123456").returncode == 0
    box.wait_states({"prod-admin": "fresh"})
    done = box.ctl("credential-process", "prod-admin")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert data["Version"] == 1
    assert data["SessionToken"] == _sections(box.credentials)["prod-admin"]["aws_session_token"]
    assert data["Expiration"].endswith("Z")


def test_refresh_renews_roles_and_sends_an_mfa_profile_to_awaiting_code(
    moto_box: Sandbox,
) -> None:
    """`credctl refresh` renews every role now; naming the MFA session asks for a code."""
    box = moto_box
    box.start()
    assert box.ctl("token", "123456").returncode == 0
    box.wait_states({"prod-admin": "fresh", "prod-ro": "fresh"})
    before = _sections(box.credentials)["prod-admin"]["aws_access_key_id"]
    done = box.ctl("refresh")
    assert done.returncode == 0, done.stderr
    assert "prod-admin renewed" in done.stdout
    assert _sections(box.credentials)["prod-admin"]["aws_access_key_id"] != before
    done = box.ctl("refresh", "session-alice")
    assert done.returncode == 0
    assert "awaiting a code" in done.stdout
    assert box.states()["session-alice"] == "awaiting-code"
    assert box.ctl("refresh", "nope").returncode == 2


def test_token_reads_the_code_from_stdin(moto_box: Sandbox) -> None:
    """`ykman ... | credctl token`: one line from a pipe."""
    box = moto_box
    box.start()
    done = box.ctl("token", input="123456\n")
    assert done.returncode == 0, done.stderr
    assert box.states()["session-alice"] == "fresh"


@pytest.mark.parametrize("code", ["12345", "1234567", "١٢٣٤٥٦", "12345a", ""])
def test_malformed_codes_exit_2_and_never_reach_sts(
    fake_box: Sandbox, fake_sts: FakeSts, code: str
) -> None:
    """5 or 7 digits, non-ASCII digits, letters: exit 2, nothing sent to STS."""
    box = fake_box
    box.start()
    done = box.ctl("token", code) if code else box.ctl("token", input="\n")
    assert done.returncode == 2
    assert done.stderr.startswith("credctl: error:")
    assert fake_sts.calls_for("GetSessionToken") == []


def test_a_rejected_code_exits_1_and_the_profile_keeps_waiting(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """AWS says no: exit 1 with AWS's reason; still awaiting-code; the code is sent once only."""
    box = fake_box
    box.start()
    fake_sts.fail_next("GetSessionToken", "reject_code")
    done = box.ctl("token", "246810")
    assert done.returncode == 1
    assert "MFA" in done.stderr
    assert box.states()["session-alice"] == "awaiting-code"
    assert len(fake_sts.calls_for("GetSessionToken")) == 1
    time.sleep(0.5)
    assert len(fake_sts.calls_for("GetSessionToken")) == 1, "a rejected code is never resent"
    assert box.ctl("token", "135791").returncode == 0


def test_a_reused_code_is_refused_by_aws_and_not_retried(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """A code AWS already accepted is refused the second time; credd reports it, exit 1."""
    box = fake_box
    box.start()
    assert box.ctl("token", "111222").returncode == 0
    again = box.ctl("token", "111222", "--profile", "session-alice")
    assert again.returncode == 1
    assert box.states()["session-alice"] == "fresh", "the old session stays in place"


def test_throttling_and_5xx_are_retried_and_shown_in_status(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """A role renewal that is throttled, then fails with a 500, is retried with backoff;
    status shows the failure and the planned retry."""
    box = fake_box
    box.start()
    fake_sts.fail_next("AssumeRole", "throttle", times=2)
    assert box.ctl("token", "123456").returncode == 0
    deadline = time.monotonic() + 20
    errors: list[str] = []
    while time.monotonic() < deadline:
        profiles = {p["name"]: p for p in box.status()["profiles"]}
        errors = [p["last_error"] or "" for p in profiles.values() if p["kind"] == "role"]
        if any("retrying at" in e for e in errors):
            break
        time.sleep(0.05)
    assert any("Throttling" in e and "retrying at" in e for e in errors), errors
    # The first retries come 2.5-15 s later (backoff with jitter).
    box.wait_states({"prod-admin": "fresh", "prod-ro": "fresh"}, timeout=40)


def test_rejected_long_term_keys_put_the_profile_in_error(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """InvalidClientTokenId: `error` state with AWS's message; exit 1 to the feeder."""
    box = fake_box
    box.start()
    fake_sts.fail_next("GetSessionToken", "invalid_client")
    done = box.ctl("token", "123456")
    assert done.returncode == 1
    assert "InvalidClientTokenId" in done.stderr
    profile = next(p for p in box.status()["profiles"] if p["name"] == "session-alice")
    assert profile["state"] == "error"
    assert "InvalidClientTokenId" in profile["last_error"]


def test_a_hanging_sts_times_out_and_the_daemon_keeps_answering(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """STS holds the request: status still answers meanwhile, and the feeder gets exit 1."""
    box = fake_box
    box.extra_env["CREDD_STS_READ_TIMEOUT"] = "2"
    box.start()
    fake_sts.fail_next("GetSessionToken", hang(30))
    feeder = subprocess.Popen(
        [str(Path(CREDD).with_name("credctl")), "token", "123456"],
        env=box.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert box.ctl("status").returncode == 0
    out, err = feeder.communicate(timeout=60)
    assert feeder.returncode == 1, (out, err)
    assert "temporary" in err
    assert box.states()["session-alice"] == "awaiting-code"


def test_no_secret_or_code_reaches_logs_or_output_at_debug(
    fake_box: Sandbox, fake_sts: FakeSts
) -> None:
    """Canaries: the long-term secret, every issued secret and token, and the codes fed
    appear nowhere in the daemon's debug log or in credctl's output."""
    box = fake_box
    box.start()
    outputs = []
    fake_sts.fail_next("GetSessionToken", "reject_code")
    for args in (("token", "907153"), ("token", "918264"), ("status",), ("status", "--json")):
        done = box.ctl(*args)
        outputs += [done.stdout, done.stderr]
    box.wait_states({"prod-admin": "fresh"})
    outputs.append(box.ctl("refresh").stdout)
    box.stop()
    sections = _sections(box.credentials)
    canaries = [LONG_TERM_SECRET, "907153", "918264"]
    for name in ("session-alice", "prod-admin", "prod-ro"):
        canaries += [sections[name]["aws_secret_access_key"], sections[name]["aws_session_token"]]
        canaries.append(sections[name]["aws_access_key_id"])  # only ever masked
    log = box.log_text()
    assert "DEBUG" in log, "the daemon really ran at debug level"
    for canary in canaries:
        assert canary not in log
        assert all(canary not in text for text in outputs)
