"""`credd login`: one MFA session now, in the foreground, that needs no daemon.

The `aws configure mfa-login` of the AWS CLI guide
(`reference/aws-cli-iam-user-credentials.txt`) for anyone without AWS CLI v2,
plus `--token-code`, written with credd's safe writer and exactly the keys the
daemon writes (`Credentials.as_file_keys`):

- source profile: `--profile`, else `default`; its long-term keys come from
  the OS keyring first (`credd keys`), then the credentials file
  (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`);
- MFA device: `--serial-number`, else the source's `mfa_serial` in the AWS
  config or credentials file, else asked on a terminal ("MFA serial number
  or ARN: "), else an error;
- target: `--update-profile`, else asked on a terminal with
  `session-<MFADeviceName>` offered in brackets, as mfa-login does; that
  default when stdin is not a terminal. It is asked *before* the code (mfa-login
  asks after it): a TOTP code lives 30 seconds;
- duration: `--duration-seconds`, 900-129600, default 43200;
- code: `--token-code`, else asked without echo on a terminal, else one line
  of stdin (`ykman oath accounts code --single aws | credd login`);
- region: `AWS_REGION` / `AWS_DEFAULT_REGION`, else the source's `region` in
  the AWS config, else the partition's STS region (us-east-1). A target with
  no section in the AWS config gets `[profile NAME]` with that region, once
  (credd.files.awsconfig), so `aws --profile NAME` works at once.

Into a profile that a running credd manages (its default `session-<device>` is
exactly such a one), the code is handed to the daemon, as `credctl token
--profile` would send it, instead of being written behind its back: the daemon
renews it with its policy's source, device and duration, and its chained roles
after it. `--profile` or `--serial-number` that contradict the policy are
refused before the code is asked for. With no daemon, or one that does not
manage the profile, login works alone as above.

Exit 0 written (or renewed by the daemon); 1 AWS refused (wrong or used code,
bad keys) or the file could not be written; 2 bad input. Nothing secret is ever
printed: the key id only masked, never the secret, the token or the code.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from credd import paths, protocol
from credd.adapters.keyring import Keyring, long_term_keys
from credd.adapters.sts import Boto3Sts, StsClient
from credd.credentials import Credentials, format_utc, mask_key_id
from credd.ctl.client import Client
from credd.daemon import planner
from credd.errors import (
    BadInputError,
    CreddError,
    DaemonUnreachableError,
    KeyringError,
    UntrustedDaemonError,
)
from credd.files.awsconfig import add_region, section_for
from credd.files.lookup import AwsFiles
from credd.files.writer import CredentialsWriter
from credd.partitions import default_region
from credd.policy import (
    SESSION_DEFAULT,
    SESSION_MAX,
    SESSION_MIN,
    mfa_serial_problem,
    section_name_problem,
)
from credd.timetext import format_relative, utc_seconds

EXIT_OK = 0


def run_login(
    args: argparse.Namespace,
    *,
    env: Mapping[str, str],
    sts: StsClient | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    clock: Callable[[], datetime] | None = None,
    keyring: Keyring | None = None,
) -> int:
    """Renew one MFA session into the credentials file; the exit status (module doc)."""
    try:
        login = _Login(args, env=env, stdin=stdin, out=out, err=err, keyring=keyring or Keyring())
        return login.run(sts, clock or _now)
    except CreddError as error:
        err.write(f"credd: error: {' '.join(error.message.split())}\n")
        return error.exit_status


def device_name(serial: str) -> str:
    """The device's name: the ARN's last path part (a hardware token's serial as it is)."""
    return serial.rsplit("/", 1)[-1].rsplit(":", 1)[-1]


def default_target(serial: str) -> str:
    """The profile mfa-login writes by default: `session-<MFADeviceName>`."""
    return f"session-{device_name(serial)}"


def region_for(serial: str, source: str, aws: AwsFiles, env: Mapping[str, str]) -> str:
    """`AWS_REGION`, `AWS_DEFAULT_REGION`, the source's config region, else the partition's."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name):
            return env[name]
    configured = aws.region_for(source)
    if configured:
        return configured
    return default_region(serial)


def display_path(path: Path, env: Mapping[str, str]) -> str:
    """`path` with the home directory written `~`, as people write it."""
    home = env.get("HOME")
    if home:
        try:
            return "~/" + str(path.relative_to(home))
        except ValueError:
            pass
    return str(path)


class _Login:
    """One `credd login`: gather the answers, call STS, write the profile."""

    def __init__(
        self,
        args: argparse.Namespace,
        *,
        env: Mapping[str, str],
        stdin: TextIO,
        out: TextIO,
        err: TextIO,
        keyring: Keyring,
    ) -> None:
        self.args = args
        self.env = env
        self.stdin = stdin
        self.out = out
        self.err = err
        self.tty = _isatty(stdin)
        self.keyring = keyring

    def run(self, sts: StsClient | None, now: Callable[[], datetime]) -> int:
        source = self.args.profile or "default"
        _check_profile_name(source, "--profile")
        credentials_file = Path(paths.credentials_path(self.env))
        writer = CredentialsWriter(credentials_file)
        sections = writer.read()
        in_file = planner.long_term_credentials(sections.get(source))
        where = display_path(credentials_file, self.env)
        daemon = self._daemon()
        keys = None
        if daemon is None:
            # Before any question: with no daemon, nothing else can help.
            keys = self._long_term_keys(source, in_file, where)
        duration = self._duration()
        if daemon is not None and self.args.update_profile in daemon.profiles:
            return self._hand_over(daemon, self.args.update_profile, now)
        aws = AwsFiles.load(credentials_file, self.env)
        serial = self._serial(source, aws)
        target = self._target(serial, source, sections)
        if daemon is not None and target in daemon.profiles:
            return self._hand_over(daemon, target, now)
        keys = keys or self._long_term_keys(source, in_file, where)
        code = self._code()
        region = region_for(serial, source, aws, self.env)

        if sts is None:
            sts = Boto3Sts()
        creds = sts.get_session_token(
            source=keys, region=region, serial=serial, code=code, duration=duration
        )
        writer.update({target: creds.as_file_keys()})
        assert creds.expires_at is not None
        left = format_relative((creds.expires_at - now()).total_seconds())
        self.out.write(
            f"wrote {target} (key {mask_key_id(creds.access_key_id)}) to {where};"
            f" expires {format_utc(creds.expires_at)} (in {left})\n"
            f"To use these credentials, specify --profile {target} when running AWS CLI"
            " commands\n"
        )
        self._add_region(aws.config_path, target, region)
        self.out.flush()
        return EXIT_OK

    def _add_region(self, config: Path, target: str, region: str) -> None:
        """Give a new profile its region in the AWS config (SPEC.md "Region for new profiles")."""
        where = display_path(config, self.env)
        try:
            if add_region(config, target, region):
                self.out.write(f"added [{section_for(target)}] with region {region} to {where}\n")
        except CreddError as error:
            self.err.write(
                f"credd: warning: the region of {target} was not added to {where}:"
                f" {' '.join(error.message.split())}\n"
            )

    def _long_term_keys(self, source: str, in_file: Credentials | None, where: str) -> Credentials:
        """The source's long-term keys, from the keyring first, or why there are none."""
        try:
            found = long_term_keys(self.keyring, source, in_file)
        except KeyringError as error:
            if not self.keyring.absent:
                raise KeyringError(
                    f"profile {source} has no keys in {where}, and {error.message}"
                ) from None
            found = None  # no keyring on this machine: it holds nothing
        if found is None:
            raise BadInputError(
                f"profile {source} has no aws_access_key_id and aws_secret_access_key in"
                f" {where} or the keyring; add them with `aws configure --profile {source}`,"
                " `credctl import --csv FILE` or `credd keys add`"
            )
        keys = found[0]
        if keys.session_token:
            raise BadInputError(
                f"profile {source} in {where} holds temporary credentials (a session token);"
                " credd login starts from an IAM user's long-term keys"
            )
        return keys

    def _daemon(self) -> _Daemon | None:
        """The running credd and the profiles it manages; None when none runs."""
        client = Client(paths.socket_path(self.env))
        try:
            status = client.request("status")
        except UntrustedDaemonError as error:
            self.err.write(f"credd: warning: {' '.join(error.message.split())}\n")
            return None
        except DaemonUnreachableError:
            return None
        profiles = {p["name"]: p for p in status.get("profiles", [])}
        return _Daemon(client, int(status.get("daemon", {}).get("pid") or 0), profiles)

    def _hand_over(self, daemon: _Daemon, target: str, now: Callable[[], datetime]) -> int:
        """Give the code to the daemon that manages `target` (SPEC.md `credd login`).

        Written here, behind its back, the file and the daemon would disagree on the
        expiry, and the daemon would ask for a code it no longer needs. So the code goes
        to it, as `credctl token --profile` would send it, and the daemon renews the
        profile (and its chained roles) as its policy says.
        """
        managed = daemon.profiles[target]
        given_source, given_serial = self.args.profile, self.args.serial_number
        if given_source and given_source != managed.get("source_profile"):
            raise BadInputError(
                f"credd (pid {daemon.pid}) manages {target} from source profile"
                f" {managed.get('source_profile')}, not {given_source}; leave out --profile"
                " to renew it there"
            )
        if given_serial and given_serial != managed.get("mfa_serial"):
            raise BadInputError(
                f"credd (pid {daemon.pid}) manages {target} with the MFA device"
                f" {managed.get('mfa_serial')}, not {given_serial}: a code from another device"
                " would be refused; leave out --serial-number"
            )
        self.out.write(
            f"{target} is managed by the running credd (pid {daemon.pid}): the code goes to"
            f" it, and it renews {target} as its policy says"
        )
        if self.args.duration_seconds is not None:
            self.out.write(" (its duration, not --duration-seconds)")
        self.out.write("\n")
        self.out.flush()
        code = self._code()
        result = daemon.client.request("token", code=code, profile=target)
        expires = result.get("expires_at")
        when = "expiry unknown"
        if isinstance(expires, str):
            left = format_relative(utc_seconds(expires) - now().timestamp())
            when = f"expires {expires} (in {left})"
        self.out.write(
            f"{result.get('profile', target)} renewed by credd; {when}\n"
            f"To use these credentials, specify --profile {target} when running AWS CLI"
            " commands\n"
        )
        self.out.flush()
        return EXIT_OK

    def _duration(self) -> int:
        duration: int | None = self.args.duration_seconds
        if duration is None:
            return SESSION_DEFAULT
        if not SESSION_MIN <= duration <= SESSION_MAX:
            raise BadInputError(
                f"--duration-seconds {duration} is out of range: STS GetSessionToken takes"
                f" {SESSION_MIN} to {SESSION_MAX} seconds (15 minutes to 36 hours)"
            )
        return duration

    def _serial(self, source: str, aws: AwsFiles) -> str:
        serial: str | None = self.args.serial_number or aws.mfa_serial_for(source)
        if not serial and self.tty:
            serial = self._ask("MFA serial number or ARN: ")
        if not serial:
            raise BadInputError(
                f"no MFA device for profile {source}: pass --serial-number ARN, or set"
                f" mfa_serial for it in {display_path(aws.config_path, self.env)}"
            )
        problem = mfa_serial_problem(serial)
        if problem is not None:
            raise BadInputError(f"MFA serial number: {problem}")
        return serial

    def _target(self, serial: str, source: str, sections: Mapping[str, Mapping[str, str]]) -> str:
        target: str | None = self.args.update_profile
        if not target:
            default = default_target(serial)
            target = default
            if self.tty:
                target = self._ask(f"Profile to update [{default}]: ") or default
        _check_profile_name(target, "--update-profile")
        if target == source:
            raise BadInputError(
                f"--update-profile {target} is the source profile: its long-term keys would be"
                " replaced by the session; name another profile"
            )
        existing = sections.get(target) or {}
        if existing.get("aws_access_key_id") and not (
            existing.get("aws_session_token") or existing.get("aws_security_token")
        ):
            raise BadInputError(
                f"profile {target} holds long-term keys (no session token); credd login will"
                " not replace them: name another profile with --update-profile"
            )
        return target

    def _code(self) -> str:
        code: str | None = self.args.token_code
        if code is None:
            if self.tty:
                code = getpass.getpass("MFA token code: ")
            else:
                code = self.stdin.readline()
                if not code:
                    raise BadInputError("no MFA code: pass --token-code, or give one line on stdin")
        return protocol.validate_code(code.strip())

    def _ask(self, prompt: str) -> str:
        self.out.write(prompt)
        self.out.flush()
        line = self.stdin.readline()
        if not line:
            raise BadInputError("no answer (end of input)")
        return line.strip()


@dataclass(frozen=True)
class _Daemon:
    """A running credd: how to reach it, its pid, and its profiles by name (status)."""

    client: Client
    pid: int
    profiles: Mapping[str, Mapping[str, Any]]


def _check_profile_name(name: str, option: str) -> None:
    problem = section_name_problem(name)
    if problem is not None:
        raise BadInputError(f"{option}: not a usable profile name ({problem})")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _now() -> datetime:
    return datetime.now(UTC)
