"""`credctl exec` and the local endpoint, end to end: the real `credd run` against a local
STS, the real `credctl`, and real SDKs (boto3, the AWS CLI) in the command it runs.

The commands get no credentials file: `credctl exec` points AWS_SHARED_CREDENTIALS_FILE
at /dev/null, although the sandbox HOME holds long-term keys in `[default]`, which an
SDK would otherwise prefer to the endpoint. So an answer as the role proves the endpoint
served it.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.daemon import AWS, CREDCTL, LONG_TERM_SECRET, MFA_SERIAL, Sandbox
from support.fake_sts import FakeSts

pytestmark = pytest.mark.slow

ROLE_ARN_PREFIX = "arn:aws:sts::123456789012:assumed-role/Admin/credd-prod-admin"
# Writes the command's whole environment to the file named by its argument.
DUMP_ENV = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"


@pytest.fixture
def moto_box(tmp_path: Path, moto_sts_url: str) -> Iterator[Sandbox]:
    """A sandbox on moto's server, its session renewed and every profile fresh."""
    box = Sandbox(tmp_path, moto_sts_url)
    box.start()
    assert box.ctl("token", "123456").returncode == 0
    box.wait_states({"prod-admin": "fresh", "prod-ro": "fresh"})
    yield box
    box.close()


def run_exec(
    box: Sandbox, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`credctl exec ...` as a person runs it, in the sandbox's environment."""
    return subprocess.run(
        [CREDCTL, "exec", *args],
        env=env or box.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def child_env(box: Sandbox, *options: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment `credctl exec prod-admin OPTIONS` gives its command."""
    out = box.root / "child-env.json"
    done = run_exec(
        box, "prod-admin", *options, "--", sys.executable, "-c", DUMP_ENV, str(out), env=env
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(out.read_text())
    return result


def get(url: str, token: str | None, method: str = "GET") -> tuple[int, dict[str, Any]]:
    """One request to the endpoint, as an SDK makes it."""
    host, port = url.split("/")[2].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        headers = {"Authorization": token} if token is not None else {}
        connection.request(method, "/" + url.split("/", 3)[3], headers=headers)
        response = connection.getresponse()
        body = response.read()
        return response.status, json.loads(body) if body else {}
    finally:
        connection.close()


def file_keys(box: Sandbox, profile: str) -> dict[str, str]:
    """`credctl credential-process PROFILE`: what the daemon holds for it."""
    done = box.ctl("credential-process", profile)
    assert done.returncode == 0, done.stderr
    result: dict[str, str] = json.loads(done.stdout)
    return result


def test_the_aws_cli_and_boto3_run_as_the_role_with_no_credentials_file(
    moto_box: Sandbox,
) -> None:
    """`aws sts get-caller-identity` and boto3 under `credctl exec prod-admin` answer as the
    role, through the endpoint (botocore's `container-role` provider), while the only
    credentials file around holds long-term keys in [default]."""
    box = moto_box
    env = {**box.env, "AWS_SHARED_CREDENTIALS_FILE": str(box.root / "nothing-here")}
    done = run_exec(
        box, "prod-admin", "--", AWS, "sts", "get-caller-identity", "--output", "json", env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["Arn"].startswith(ROLE_ARN_PREFIX)
    assert done.stderr == ""

    script = textwrap.dedent(
        """
        import json, boto3
        session = boto3.Session()
        identity = session.client("sts").get_caller_identity()
        creds = session.get_credentials()
        print(json.dumps({"arn": identity["Arn"], "method": creds.method,
                          "key": creds.get_frozen_credentials().access_key,
                          "region": session.region_name}))
        """
    )
    bare = {k: v for k, v in env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    done = run_exec(box, "prod-admin", "--", sys.executable, "-c", script, env=bare)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["arn"].startswith(ROLE_ARN_PREFIX)
    assert seen["method"] == "container-role"
    assert seen["key"] == file_keys(box, "prod-admin")["AccessKeyId"]
    assert seen["region"] == "us-east-1", "the profile's region, none being set"

    # The control: the same SDK, left to find credentials itself, takes the file's [default].
    plain = subprocess.run(
        [AWS, "sts", "get-caller-identity", "--output", "json"],
        env=box.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0 and "assumed-role" not in plain.stdout


LONG_RUN = textwrap.dedent(
    """
    import sys, boto3
    session = boto3.Session()
    sts = session.client("sts")
    for line in sys.stdin:
        sts.get_caller_identity()
        print(session.get_credentials().get_frozen_credentials().access_key, flush=True)
    """
)

SHORT_ROLE_POLICY = f"""version: 1
defaults:
  region: us-east-1
profiles:
  session-alice:
    source_profile: default
    mfa_serial: {MFA_SERIAL}
  prod-admin:
    source_profile: session-alice
    role_arn: arn:aws:iam::123456789012:role/Admin
    duration: 15m
    refresh_before: 5m
"""


def test_a_long_running_boto3_process_is_served_each_renewal(
    tmp_path: Path, fake_sts: FakeSts
) -> None:
    """A boto3 process started once keeps working across renewals of its profile: a 15m
    role is always inside botocore's refresh window, so each call asks the endpoint again,
    and after `credctl refresh` its calls are signed with the new session."""
    box = Sandbox(tmp_path, fake_sts.url, policy_text=SHORT_ROLE_POLICY)
    try:
        box.start()
        assert box.ctl("token", "123456").returncode == 0
        box.wait_states({"prod-admin": "fresh"})
        child = subprocess.Popen(
            [CREDCTL, "exec", "prod-admin", "--", sys.executable, "-c", LONG_RUN],
            env=box.env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        used = []
        for _round in range(3):
            before = file_keys(box, "prod-admin")["AccessKeyId"]
            child.stdin.write("go\n")
            child.stdin.flush()
            used.append(child.stdout.readline().strip())
            assert used[-1] == before
            done = box.ctl("refresh", "prod-admin")
            assert done.returncode == 0 and "prod-admin renewed" in done.stdout
            assert file_keys(box, "prod-admin")["AccessKeyId"] != before
        child.stdin.close()
        assert child.wait(60) == 0, child.stderr.read() if child.stderr else ""
        assert len(set(used)) == 3, "one process, three sessions"
        signed = [c.access_key_id for c in fake_sts.calls_for("GetCallerIdentity")]
        assert signed == used, "STS saw each call signed with the session of its time"
    finally:
        box.close()


def test_tokens_are_bound_revoked_and_refused(moto_box: Sandbox) -> None:
    """A token reads its own profile only; a wrong one gets 403, other methods 405; it is
    revoked when the command ends, and ended by --ttl."""
    box = moto_box
    admin = child_env(box)
    url, token = (
        admin["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
        admin["AWS_CONTAINER_AUTHORIZATION_TOKEN"],
    )
    assert url == box.status()["daemon"]["endpoint"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1/credentials")
    assert get(url, token)[0] == 403, "revoked when its command ended"

    script = textwrap.dedent(
        """
        import json, os, sys, http.client
        url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
        token = os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        host, port = url.split("/")[2].split(":")
        def ask(method, path, headers):
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request(method, path, headers=headers)
            r = c.getresponse()
            return [r.status, json.loads(r.read())]
        print(json.dumps({
            "own": ask("GET", "/v1/credentials", {"Authorization": token}),
            "asking_for_ro": ask(
                "GET", "/v1/credentials?profile=prod-ro", {"Authorization": token}
            ),
            "wrong": ask("GET", "/v1/credentials", {"Authorization": token[:-1] + "x"}),
            "none": ask("GET", "/v1/credentials", {}),
            "post": ask("POST", "/v1/credentials", {"Authorization": token}),
        }))
        """
    )
    done = run_exec(box, "prod-admin", "--", sys.executable, "-c", script)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    admin_key = file_keys(box, "prod-admin")["AccessKeyId"]
    ro_key = file_keys(box, "prod-ro")["AccessKeyId"]
    assert seen["own"][0] == 200 and seen["own"][1]["AccessKeyId"] == admin_key
    assert seen["own"][1]["RoleArn"] == "arn:aws:iam::123456789012:role/Admin"
    assert seen["asking_for_ro"][1]["AccessKeyId"] == admin_key != ro_key
    assert seen["wrong"][0] == seen["none"][0] == 403
    assert seen["post"][0] == 405

    late = "import time; time.sleep(1.5)\n" + script
    ttl = run_exec(box, "prod-admin", "--ttl", "1s", "--", sys.executable, "-c", late)
    assert ttl.returncode == 0, ttl.stderr
    assert json.loads(ttl.stdout)["own"][0] == 403, "its --ttl of 1s has passed"


def test_a_profile_without_valid_credentials_is_503_with_a_reason(
    tmp_path: Path, moto_sts_url: str
) -> None:
    """Before any code is fed, the role has nothing valid: credctl warns, the endpoint says
    503 with why, and an SDK fails instead of running on the file's long-term keys."""
    box = Sandbox(tmp_path, moto_sts_url)
    try:
        box.start()
        script = textwrap.dedent(
            """
            import json, os, http.client
            url = os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
            host, port = url.split("/")[2].split(":")
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("GET", "/v1/credentials",
                      headers={"Authorization": os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"]})
            r = c.getresponse()
            print(json.dumps([r.status, json.loads(r.read())]))
            """
        )
        done = run_exec(box, "prod-admin", "--", sys.executable, "-c", script)
        assert done.returncode == 0, done.stderr
        status, body = json.loads(done.stdout)
        assert status == 503
        assert body["Message"].startswith("credd holds no valid credentials for prod-admin")
        assert done.stderr.startswith("credctl: warning: credd holds no valid credentials")
        cli = run_exec(box, "prod-admin", "--", AWS, "sts", "get-caller-identity")
        assert cli.returncode != 0 and "503" in cli.stderr
        static = run_exec(box, "prod-admin", "--env", "--", "true")
        assert static.returncode == 1
        assert static.stderr.count("\n") == 1
        assert static.stderr.startswith(
            "credctl: error: credd holds no valid credentials for prod-admin (pending)"
        )
    finally:
        box.close()


def test_env_sets_static_keys_and_removes_the_rest(moto_box: Sandbox) -> None:
    """--env: the four variables hold what the daemon holds; profile selectors and the
    endpoint's variables are gone; the region is the profile's unless one was set."""
    box = moto_box
    parent = {
        **box.env,
        "AWS_PROFILE": "unrelated",
        "AWS_DEFAULT_PROFILE": "unrelated",
        "AWS_ACCESS_KEY_ID": "AKIASTALESTALESTALE0",
        "AWS_SECRET_ACCESS_KEY": "stale",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:1/elsewhere",
        "AWS_REGION": "eu-central-1",
    }
    static = child_env(box, "--env", env=parent)
    held = file_keys(box, "prod-admin")
    assert static["AWS_ACCESS_KEY_ID"] == held["AccessKeyId"]
    assert static["AWS_SECRET_ACCESS_KEY"] == held["SecretAccessKey"]
    assert static["AWS_SESSION_TOKEN"] == held["SessionToken"]
    assert static["AWS_CREDENTIAL_EXPIRATION"] == held["Expiration"]
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    ):
        assert name not in static
    assert static["AWS_REGION"] == "eu-central-1"

    served = child_env(box, env=parent)
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert name not in served
    assert served["AWS_SHARED_CREDENTIALS_FILE"] == "/dev/null"
    assert served["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == box.status()["daemon"]["endpoint"]


def test_exit_statuses_pass_through(moto_box: Sandbox) -> None:
    """COMMAND's status; 128+N for a signal death; 127 with one line when it cannot run."""
    box = moto_box
    assert run_exec(box, "prod-admin", "--", "sh", "-c", "exit 7").returncode == 7
    assert run_exec(box, "prod-admin", "--", "sh", "-c", "kill -9 $$").returncode == 137
    missing = run_exec(box, "prod-admin", "--", "credd-no-such-command")
    assert missing.returncode == 127
    assert missing.stderr == (
        "credctl: error: cannot run credd-no-such-command: No such file or directory\n"
    )
    unknown = run_exec(box, "no-such-profile", "--", "true")
    assert unknown.returncode == 2 and "no profile 'no-such-profile'" in unknown.stderr


RECORDER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    log = open(sys.argv[1], "a", buffering=1)
    got = []
    def note(signum, frame):
        got.append(signum)
        log.write(signal.Signals(signum).name + "\\n")
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, note)
    json.dump(dict(os.environ), open(sys.argv[1] + ".env", "w"))
    log.write("ready\\n")
    while not got:
        time.sleep(0.01)
    time.sleep(0.5)
    sys.exit(42)
    """
)


# Runs the command given after the status file's name, ignores a terminal's Ctrl-C itself,
# and writes the command's exit status into the file.
WAIT_AND_RECORD = textwrap.dedent(
    """
    import os, signal, sys
    pid = os.fork()
    if pid == 0:
        os.execv(sys.argv[2], sys.argv[2:])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(os.waitstatus_to_exitcode(status)))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    """
)


def wait_for_line(path: Path, line: str, timeout: float = 30.0) -> list[str]:
    """Poll a file until it holds `line`; its lines."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if line in lines:
            return lines
        time.sleep(0.02)
    raise AssertionError(f"{path} never held {line!r}")


def test_sigterm_to_credctl_reaches_the_command_and_the_token_dies(moto_box: Sandbox) -> None:
    """kill -TERM of `credctl exec`: the command gets SIGTERM once, credctl exits with the
    command's status, and the token is revoked."""
    box = moto_box
    log = box.root / "signals"
    credctl = subprocess.Popen(
        [CREDCTL, "exec", "prod-admin", "--", sys.executable, "-c", RECORDER, str(log)],
        env=box.env,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "ready")
        seen = json.loads(Path(str(log) + ".env").read_text())
        url, token = (
            seen["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            seen["AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        )
        assert get(url, token)[0] == 200
        credctl.send_signal(signal.SIGTERM)
        assert credctl.wait(30) == 42
        assert log.read_text().splitlines() == ["ready", "SIGTERM"]
        assert get(url, token)[0] == 403
    finally:
        if credctl.poll() is None:
            credctl.kill()
            credctl.wait()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_ctrl_c_in_a_terminal_reaches_the_command_once(moto_box: Sandbox) -> None:
    """In a real terminal (tmux), Ctrl-C reaches the command once, not a second time through
    credctl (a second SIGINT makes terraform abandon its clean-up); credctl then exits with
    the command's status."""
    box = moto_box
    log = box.root / "signals"
    socket = str(box.sockdir / "tmux")
    env = {**box.env, "TERM": "xterm-256color"}
    recorder = box.root / "recorder.py"
    recorder.write_text(RECORDER)

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-S", socket, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout

    # The pane runs credctl under a parent that only waits and writes down its exit status
    # (tmux's own #{pane_dead_status} is sometimes never filled in).
    status = box.root / "status"
    tmux(
        "new-session", "-d", "-x", "120", "-y", "30",
        sys.executable, "-c", WAIT_AND_RECORD, str(status),
        CREDCTL, "exec", "prod-admin", "--", sys.executable, str(recorder), str(log),
    )  # fmt: skip
    try:
        wait_for_line(log, "ready")
        tmux("send-keys", "C-c")
        deadline = time.monotonic() + 30
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.read_text().splitlines() == ["ready", "SIGINT"]
        assert status.read_text() == "42"
    finally:
        subprocess.run(["tmux", "-S", socket, "kill-server"], env=env, capture_output=True)


def test_idle_slow_and_oversized_clients_stall_neither_the_daemon_nor_status(
    moto_box: Sandbox,
) -> None:
    """While 300 idle connections, 50 slow-drip clients and an oversized request hold the
    endpoint, `credctl status` answers and a command under `credctl exec` gets its keys."""
    box = moto_box
    log = box.root / "signals"
    holder = subprocess.Popen(
        [CREDCTL, "exec", "prod-admin", "--", sys.executable, "-c", RECORDER, str(log)],
        env=box.env,
        start_new_session=True,
    )
    try:
        wait_for_line(log, "ready")
        seen = json.loads(Path(str(log) + ".env").read_text())
        url, token = (
            seen["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
            seen["AWS_CONTAINER_AUTHORIZATION_TOKEN"],
        )

        async def meanwhile() -> None:
            host, port = url.split("/")[2].split(":")
            idle = [await asyncio.open_connection(host, int(port)) for _ in range(300)]
            drips = [await asyncio.open_connection(host, int(port)) for _ in range(50)]
            for _, writer in drips:
                writer.write(b"GET /v1/cred")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /v1/credentials HTTP/1.1\r\nX: " + b"a" * 100_000)
            answer = await asyncio.wait_for(reader.read(4096), 30)
            assert answer.startswith(b"HTTP/1.1 431 ")
            loop = asyncio.get_running_loop()
            status = await loop.run_in_executor(None, lambda: box.ctl("status", "--json"))
            assert status.returncode == 0, status.stderr
            served = await loop.run_in_executor(None, lambda: get(url, token))
            assert served[0] == 200
            cli = await loop.run_in_executor(
                None,
                lambda: run_exec(
                    box, "prod-admin", "--", AWS, "sts", "get-caller-identity", "--output", "json"
                ),
            )
            assert cli.returncode == 0, cli.stderr
            assert json.loads(cli.stdout)["Arn"].startswith(ROLE_ARN_PREFIX)
            for _, w in [*idle, *drips, (reader, writer)]:
                w.close()

        asyncio.run(meanwhile())
        assert box.proc is not None and box.proc.poll() is None
        assert box.ctl("status").returncode == 0
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(30)


def test_no_token_or_secret_reaches_the_log_status_or_credctls_messages(
    moto_box: Sandbox,
) -> None:
    """Canaries at debug level: the tokens handed out, the keys served, the long-term secret
    appear nowhere in the daemon's log, `credctl status` or credctl's own stderr."""
    box = moto_box
    outputs: list[str] = []
    tokens: list[str] = []
    for options in ((), ("--ttl", "5m"), ("--env",)):
        out = box.root / "env.json"
        done = run_exec(box, "prod-admin", *options, "--", sys.executable, "-c", DUMP_ENV, str(out))
        assert done.returncode == 0
        outputs += [done.stdout, done.stderr]
        seen = json.loads(out.read_text())
        if "AWS_CONTAINER_AUTHORIZATION_TOKEN" in seen:
            token = seen["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
            tokens.append(token)
            get(seen["AWS_CONTAINER_CREDENTIALS_FULL_URI"], token)
    outputs += [box.ctl("status").stdout, box.ctl("status", "--json").stdout]
    held = file_keys(box, "prod-admin")
    box.stop()
    log = box.log_text()
    assert "endpoint token issued for prod-admin" in log, "the daemon logged at debug level"
    canaries = [
        *tokens,
        held["SecretAccessKey"],
        held["SessionToken"],
        held["AccessKeyId"],
        LONG_TERM_SECRET,
    ]
    for canary in canaries:
        assert canary not in log
        assert all(canary not in text for text in outputs)
