"""`make demo`: the whole product on one machine, with no AWS account.

moto's server on 127.0.0.1 stands in for AWS (IAM and STS). The demo makes an
IAM user with access keys and a virtual MFA device there, writes them into a
sandbox HOME as a person would have them, runs `credd run` against it, feeds a
real TOTP code from that device with `credctl token`, and shows the result:
status, the credentials file (secrets masked), the region credd gave each new
profile in ~/.aws/config, the AWS CLI using a chained role with no AWS_REGION,
and the same role served to a command by `credctl exec` through credd's local
endpoint, with no credentials file in its reach. The long-term key is moved
into an OS keyring first (a real Secret Service, GNOME Keyring on a session
bus of the demo's own, started as the tests start it), and rotated at the end
with the MFA session credd holds. Everything it starts, it stops.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import pyotp

# The local-STS helpers the tests use: one way to find a port and see moto answer.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support.moto_sts import answers, free_port
from support.secret_service import missing_tools, secret_service

BIN = Path(sys.executable).parent
ACCOUNT = "123456789012"


def say(text: str) -> None:
    """A step heading."""
    print(f"\n\033[1m==> {text}\033[0m" if sys.stdout.isatty() else f"\n==> {text}", flush=True)


def show(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a command as a person would type it, and show both."""
    shown = " ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv))
    print(f"$ {shown}", flush=True)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    sys.stdout.write(done.stdout)
    sys.stdout.write(done.stderr)
    return done


def wait_until(predicate: object, what: str, timeout: float = 30) -> None:
    """Poll `predicate()` until true, or stop the demo saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise SystemExit(f"demo: {what} did not happen within {timeout}s")


def masked(text: str) -> str:
    """The credentials file with every secret and token masked, key ids shortened."""
    text = re.sub(r"(?m)^(aws_secret_access_key\s*=\s*)\S+", r"\1****", text)
    text = re.sub(r"(?m)^(aws_session_token\s*=\s*)\S+", r"\1****", text)
    return re.sub(r"(?m)^(aws_access_key_id\s*=\s*)\S+(\S{4})$", r"\1****\2", text)


def main() -> int:
    """Run the demo; return its exit status."""
    root = Path(tempfile.mkdtemp(prefix="credd-demo-"))
    home = root / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "CREDD_SOCKET": f"{root}/credd.sock" if len(str(root)) < 80 else "/tmp/credd-demo.sock",
        "AWS_ENDPOINT_URL": url,
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ENDPOINT_URL_IAM": url,
        # No AWS_REGION: the region is in ~/.aws/config, as `aws configure` leaves it, and
        # credd gives each profile it creates its own (SPEC.md "Region for new profiles").
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    started: list[subprocess.Popen[bytes]] = []
    missing = missing_tools()
    if missing:
        print(f"demo: missing {', '.join(missing)} (`make demo` installs them)", file=sys.stderr)
        return 1
    keyring = secret_service(root / "secret-service")
    try:
        say("Starting an OS keyring (GNOME Keyring's Secret Service on a bus of its own)")
        env["DBUS_SESSION_BUS_ADDRESS"] = keyring.__enter__().address
        print("unlocked, as after a desktop login")
        say(f"Starting a local STS (moto's server) on {url}")
        moto = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(moto)
        wait_until(lambda: answers(port), "moto's server answering")

        say("Making an IAM user with access keys and a virtual MFA device (in moto)")
        admin = dict(
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIADEMOADMIN0000000",
            aws_secret_access_key="demo",
        )
        iam = boto3.client("iam", **admin)  # type: ignore[arg-type]
        iam.create_user(UserName="alice")
        key = iam.create_access_key(UserName="alice")["AccessKey"]
        device = iam.create_virtual_mfa_device(VirtualMFADeviceName="alice-phone")
        device = device["VirtualMFADevice"]
        seed = device["Base32StringSeed"]
        seed = seed.decode() if isinstance(seed, bytes) else seed
        totp = pyotp.TOTP(seed)
        serial = device["SerialNumber"]
        iam.enable_mfa_device(
            UserName="alice",
            SerialNumber=serial,
            AuthenticationCode1=totp.at(time.time() - 30),
            AuthenticationCode2=totp.now(),
        )
        for role in ("Admin", "ReadOnly"):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")
        print(f"user alice, MFA device {serial}")

        (home / ".aws").mkdir(parents=True)
        credentials = home / ".aws" / "credentials"
        credentials.write_text(
            "# alice's long-term keys, as `aws configure` writes them\n"
            "[default]\n"
            f"aws_access_key_id = {key['AccessKeyId']}\n"
            f"aws_secret_access_key = {key['SecretAccessKey']}\n"
            "\n[unrelated]\n# credd never touches a profile it does not manage\n"
            "region = eu-west-1\n"
        )
        credentials.chmod(0o600)
        config = home / ".aws" / "config"
        config.write_text("[default]\nregion = us-east-1\n")
        policy = home / ".config" / "credd" / "policy.yaml"
        # credd trusts only a policy no one else can change: 0600 in 0700, as `credd init`
        # writes it.
        policy.parent.mkdir(mode=0o700, parents=True)
        policy.parent.chmod(0o700)
        policy.write_text(
            "version: 1\n"
            "defaults:\n  duration: 12h\n  refresh_before: 15m\n"
            "profiles:\n"
            "  session-alice-phone:\n"
            "    source_profile: default\n"
            f"    mfa_serial: {serial}\n"
            "    rotate_every: 90d\n"
            "  prod-admin:\n"
            "    source_profile: session-alice-phone\n"
            f"    role_arn: arn:aws:iam::{ACCOUNT}:role/Admin\n"
            "  prod-readonly:\n"
            "    source_profile: session-alice-phone\n"
            f"    role_arn: arn:aws:iam::{ACCOUNT}:role/ReadOnly\n"
            "    duration: 30m\n"
        )
        policy.chmod(0o600)
        say(f"The policy ({policy})")
        print(policy.read_text(), end="")
        show([str(BIN / "credd"), "check"], env)

        say("Moving alice's long-term key out of the file and into the OS keyring")
        done = show([str(BIN / "credd"), "keys", "import", "default"], env)
        if done.returncode != 0:
            return done.returncode
        print(f"--- {credentials}, now:")
        print(masked(credentials.read_text()), end="")
        show([str(BIN / "credd"), "keys", "list"], env)

        say("Starting the daemon: credd run")
        log = (root / "credd.log").open("wb")
        daemon = subprocess.Popen(
            [str(BIN / "credd"), "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        started.append(daemon)
        wait_until(
            lambda: (
                subprocess.run(
                    [str(BIN / "credctl"), "status"], env=env, capture_output=True
                ).returncode
                == 0
            ),
            "credd answering on its socket",
        )
        say("credd is waiting for an MFA code; the roles wait for the session")
        show([str(BIN / "credctl"), "status"], env)

        say("Feeding the code the virtual MFA device shows now")
        done = show([str(BIN / "credctl"), "token", totp.now()], env)
        if done.returncode != 0:
            return done.returncode
        wait_until(lambda: _all_fresh(env), "every profile fresh")

        say("Every profile is fresh: the roles were renewed on the session with no prompt")
        show([str(BIN / "credctl"), "status"], env)

        say(f"The credentials file ({credentials}), secrets masked")
        print(masked(credentials.read_text()), end="")

        # Each region is added just after the profile's first write, off credd's loop.
        wait_until(lambda: config.read_text().count("[profile ") == 3, "the regions written")
        say(f"The AWS config ({config}): each new profile got its region, once")
        print(config.read_text(), end="")

        say("The AWS CLI uses the chained role, with no AWS_REGION set")
        show(
            [str(BIN / "aws"), "sts", "get-caller-identity", "--profile", "prod-admin"],
            env,
        )
        say("A command run by credctl exec: served by credd's local endpoint, no file needed")
        print(
            "credctl exec gives the command a token for credd's endpoint on 127.0.0.1 and\n"
            "AWS_SHARED_CREDENTIALS_FILE=/dev/null; its SDK asks the endpoint again before\n"
            "the role expires, so a long run never holds a stale session",
            flush=True,
        )
        show([str(BIN / "credctl"), "exec", "prod-admin", "--", "aws", "configure", "list"], env)
        done = show(
            [str(BIN / "credctl"), "exec", "prod-admin", "--", "aws", "sts", "get-caller-identity"],
            env,
        )
        if done.returncode != 0:
            return done.returncode
        say("Rotating alice's access key now, with the MFA session credd holds (no new code)")
        done = show([str(BIN / "credctl"), "rotate", "default"], env)
        if done.returncode != 0:
            return done.returncode
        held = [
            k["AccessKeyId"] for k in iam.list_access_keys(UserName="alice")["AccessKeyMetadata"]
        ]
        print(f"IAM lists {len(held)} key for alice: " + ", ".join("****" + k[-4:] for k in held))
        show([str(BIN / "credd"), "keys", "list"], env)
        show([str(BIN / "credctl"), "status"], env)

        say("Stopping everything the demo started")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        print(f"credd stopped (exit {daemon.returncode}); moto's server is stopped next")
        if os.environ.get("CREDD_DEMO_KEEP"):
            print(f"sandbox kept in {root} (credd's log: {root}/credd.log)")
        return 0
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        keyring.__exit__(None, None, None)
        if not os.environ.get("CREDD_DEMO_KEEP"):
            shutil.rmtree(root, ignore_errors=True)


def _all_fresh(env: dict[str, str]) -> bool:
    # `status --short` counts profiles still pending among the good ones: ask for each state.
    done = subprocess.run(
        [str(BIN / "credctl"), "status", "--json"], env=env, capture_output=True, text=True
    )
    return done.returncode == 0 and all(
        profile["state"] == "fresh" for profile in json.loads(done.stdout)["profiles"]
    )


if __name__ == "__main__":
    sys.exit(main())
