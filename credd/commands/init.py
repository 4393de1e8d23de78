"""`credd init`: first-run setup, asked on the terminal the way `aws configure mfa-login` asks.

It asks for the source profile (one of those with long-term keys; with none,
it says how to add them and stops), the MFA device (offering the `mfa_serial`
the AWS files name for it), the profile to write (`session-<MFADeviceName>`),
the session length, and optionally roles to chain on the session. It then shows
what `credd check` would say of the policy, and only then asks whether to
install the service. Only after the last answer is anything written: the policy
(a commented YAML text, written by hand so each key carries its explanation;
the file 0600, and its directory 0700 when init makes it), then `credd install`
if that was asked for. When the source's long-term keys sit in plaintext in the
credentials file and an OS keyring is there, init offers (after the questions)
to move them into it, as `credd keys import` does, once the policy is written.
A directory that exists is left as it is; one that someone else owns or can
write is refused before any question (exit 2), since credd would not trust a
policy there.

Answers are read line by line from `stdin`, so it works on a terminal, under
a pty or tmux, and with piped input. End of input before the last answer
aborts with exit 1, Ctrl-C with exit 130, both with nothing written and saying
so. An existing policy is replaced only after a yes (the default is no).
Durations are answered as in the policy (`12h`, `90m`) or in seconds (`3600`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from credd import paths
from credd.adapters.keyring import Keyring
from credd.commands.check import problem_lines
from credd.commands.install import install
from credd.commands.keys import move_into_keyring, plaintext_profiles
from credd.commands.login import default_target, display_path
from credd.credentials import mask_key_id
from credd.durations import format_duration, parse_duration
from credd.errors import EXIT_INTERRUPTED, CreddError, PolicyError
from credd.files.atomic import atomic_write, make_directories
from credd.files.lookup import AwsFiles
from credd.files.writer import CredentialsWriter
from credd.policy import (
    ROLE_ARN,
    ROLE_CHAINED_MAX,
    ROLE_MAX,
    ROLE_MIN,
    SESSION_DEFAULT,
    SESSION_MAX,
    SESSION_MIN,
    format_summary,
    mfa_serial_problem,
    parse_policy,
    section_name_problem,
)
from credd.policy.trust import directory_problems
from credd.policy.validate import show

T = TypeVar("T")

EXIT_OK = 0
EXIT_ABORTED = 1
EXIT_INVALID = 2

_MFA_EXAMPLE = "arn:aws:iam::123456789012:mfa/MFADeviceName"
_ROLE_EXAMPLE = "arn:aws:iam::123456789012:role/Admin"
_SERVICE_KIND = {"linux": "systemd", "darwin": "launchd"}
# No one else may change what the policy makes credd run (SPEC.md "Files and locations").
POLICY_MODE = 0o600
POLICY_DIR_MODE = 0o700


class _Aborted(Exception):
    """Input ended before the last answer."""


@dataclass(frozen=True)
class RoleAnswer:
    """One role to chain on the session."""

    name: str
    role_arn: str
    duration: int


@dataclass(frozen=True)
class Answers:
    """Everything `credd init` asked."""

    source_profile: str
    mfa_serial: str
    target: str
    duration: int
    roles: tuple[RoleAnswer, ...] = ()


def run_init(
    *,
    env: Mapping[str, str],
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    platform: str = sys.platform,
    python: str = sys.executable,
    keyring: Keyring | None = None,
) -> int:
    """Ask, write the policy, check it, and install the service if asked; the exit status.

    0 written and valid; 1 aborted (end of input, or an existing policy kept) or
    the install failed; 2 written but `credd check` finds a problem to fix, or not
    written because someone else could change a policy in its directory.
    """
    asker = _Asker(stdin, out)
    init = _Init(
        env=env,
        ask=asker,
        out=out,
        platform=platform,
        python=python,
        keyring=keyring or Keyring(),
    )
    try:
        return init.run()
    except _Aborted:
        out.write(f"\ncredd init: input ended; {init.what_was_written()}\n")
        out.flush()
        return EXIT_ABORTED
    except KeyboardInterrupt:
        # On a new line: the shell's prompt must not follow the question on its line.
        out.write(f"\ncredd init: interrupted; {init.what_was_written()}\n")
        out.flush()
        return EXIT_INTERRUPTED


def render_policy(answers: Answers) -> str:
    """The policy text for `answers`: valid YAML whose comments explain each key."""
    q = json.dumps  # a JSON string is a YAML double-quoted scalar
    lines = [
        "# credd policy, written by `credd init`.",
        "# Check it with `credd check`; a running credd re-reads it on `credctl reload`.",
        "# Durations are written 12h, 90m, 1h30m or 45s.",
        "version: 1",
        "",
        "# Where the sessions are written: by default AWS_SHARED_CREDENTIALS_FILE,",
        "# else ~/.aws/credentials.",
        "# credentials_file: ~/.aws/credentials",
        "",
        "defaults:",
        "  # Renew each session this long before it expires (an MFA session asks for a",
        "  # code then; its old credentials stay in place until they expire).",
        "  refresh_before: 15m",
        "  # STS region. Left out: AWS_REGION, then the source profile's region in",
        "  # ~/.aws/config, else us-east-1.",
        "  # region: us-east-1",
        "  # A command that prints the 6-digit code when one is needed: an argv list,",
        "  # never a shell string. If it fails or times out, credd asks over the socket",
        "  # (`credctl token CODE`, `credctl prompt`).",
        "  # code_command: [ykman, oath, accounts, code, --single, aws]",
        '  # code_command: [op, item, get, "AWS", --otp]',
        "  # A command run when a code is needed; {profile}, {mfa_serial} and {message}",
        "  # are filled in.",
        '  # notify: [notify-send, credd, "{message}"]',
        "",
        "# The profiles credd keeps fresh, each a [section] of the credentials file.",
        "profiles:",
        "  # An MFA session: STS GetSessionToken with the long-term keys of",
        "  # source_profile and a code from the device mfa_serial.",
        f"  {q(answers.target)}:",
        f"    source_profile: {q(answers.source_profile)}",
        f"    mfa_serial: {q(answers.mfa_serial)}",
        "    # Session length: 15m to 36h.",
        f"    duration: {q(format_duration(answers.duration))}",
    ]
    for role in answers.roles:
        lines += [
            "",
            f"  # A role assumed with {answers.target}'s session: renewed with no prompt",
            "  # right after it. AWS allows at most 1h when chaining on a session.",
            "  # Optional: role_session_name, external_id.",
            f"  {q(role.name)}:",
            f"    source_profile: {q(answers.target)}",
            f"    role_arn: {q(role.role_arn)}",
            f"    duration: {q(format_duration(role.duration))}",
        ]
    return "\n".join(lines) + "\n"


def write_policy(path: Path, text: str, *, replace: bool) -> Path:
    """Write `text` at `path` (through a symlink to its target): file 0600, and the
    directories it creates (missing parents too) 0700; existing ones are left as they are.

    Without `replace`, a file that appeared meanwhile is never overwritten
    (FileExistsError). Returns the path written.
    """
    target = Path(os.path.realpath(path))
    make_directories(target.parent, POLICY_DIR_MODE)
    return atomic_write(target, text.encode("utf-8"), mode=POLICY_MODE, replace=replace)


class _Asker:
    """Asks one question at a time on `out` and reads one line of `stdin` for each."""

    def __init__(self, stdin: TextIO, out: TextIO) -> None:
        self._stdin = stdin
        self._out = out

    def line(self, prompt: str) -> str:
        """One answer, stripped; _Aborted at end of input."""
        self._out.write(prompt)
        self._out.flush()
        line = self._stdin.readline()
        if not line:
            raise _Aborted
        return line.strip()

    def value(
        self, question: str, default: str | None, check: Callable[[str], tuple[T | None, str]]
    ) -> T:
        """Ask until `check(answer)` accepts it: (value, "") or (None, why not)."""
        prompt = f"{question} [{default}]: " if default else f"{question}: "
        while True:
            answer = self.line(prompt) or (default or "")
            value, problem = check(answer)
            if value is not None:
                return value
            self._out.write(f"  {problem}\n")

    def yes(self, question: str) -> bool:
        """A yes/no question whose default is no."""
        while True:
            answer = self.line(f"{question} [y/N]: ").lower()
            if answer in ("y", "yes"):
                return True
            if answer in ("", "n", "no"):
                return False
            self._out.write("  answer y or n\n")


class _Init:
    def __init__(
        self,
        *,
        env: Mapping[str, str],
        ask: _Asker,
        out: TextIO,
        platform: str,
        python: str,
        keyring: Keyring,
    ) -> None:
        self.env = env
        self.ask = ask
        self.out = out
        self.platform = platform
        self.python = python
        self.keyring = keyring
        self.policy_path = Path(paths.policy_path(env))
        self.credentials_file = Path(paths.credentials_path(env))
        self.aws = AwsFiles.load(self.credentials_file, env, keyring.holds)
        self.written: Path | None = None

    def what_was_written(self) -> str:
        """`nothing was written`, or which policy was (for an interruption after it)."""
        if self.written is None:
            return "nothing was written"
        return f"the policy {self.written} was written; the service was not installed"

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> int:
        self.say(f"credd init: writes the policy {display_path(self.policy_path, self.env)}")
        directory = Path(os.path.realpath(self.policy_path)).parent
        untrusted = directory_problems(directory) if directory.is_dir() else []
        if untrusted:
            # Asked first: credd would refuse the policy written there.
            for problem in untrusted:
                self.say(f"credd init: {problem}")
            self.say("nothing was written")
            return EXIT_INVALID
        sources = self.source_profiles()
        if not sources:
            # Any answer would be a source credd cannot start from: say what to do first.
            where = display_path(self.credentials_file, self.env)
            self.say(
                f"credd init: no profile with long-term keys in {where} yet: add them with"
                " `aws configure` or `credctl import --csv FILE`, then run `credd init` again"
            )
            self.say("nothing was written")
            return EXIT_INVALID
        self.say("Press Enter to take the value in [brackets].")
        replace = False
        if self.policy_path.exists() or self.policy_path.is_symlink():
            replace = self.ask.yes(f"A policy already exists at {self.policy_path}. Replace it?")
            if not replace:
                self.say(f"kept {self.policy_path}; nothing was written")
                return EXIT_ABORTED
        answers = self.questions(sources)
        move_keys = self.offer_keyring(answers.source_profile)
        return self.finish(answers, replace=replace, move_keys=move_keys)

    # -- the questions ---------------------------------------------------------

    def offer_keyring(self, source: str) -> bool:
        """Offer to move the source's plaintext keys into the OS keyring, when there is one."""
        writer = CredentialsWriter(self.credentials_file)
        if not plaintext_profiles(writer, [source]) or not self.keyring.available():
            return False
        where = display_path(self.credentials_file, self.env)
        return self.ask.yes(
            f"Move the long-term keys of {source} out of {where} into the OS keyring"
            f" (`credd keys import {source}`; `credd keys export {source}` undoes it)?"
        )

    def questions(self, sources: list[str]) -> Answers:
        where = display_path(self.credentials_file, self.env)
        self.say(f"Profiles with long-term keys in {where}: {', '.join(sources)}")
        default_source = "default" if "default" in sources else sources[0]
        source = self.ask.value(
            "Source profile", default_source, lambda a: self.check_source(a, sources)
        )
        serial = self.ask.value(
            "MFA serial number or ARN", self.aws.mfa_serial_for(source), _check_serial
        )
        target = self.ask.value(
            "Profile to update",
            default_target(serial),
            lambda a: self.check_new_name(a, taken={source}, sources=sources),
        )
        duration = self.ask.value(
            "Session duration",
            format_duration(SESSION_DEFAULT),
            lambda a: _check_duration(a, SESSION_MIN, SESSION_MAX, "an MFA session"),
        )
        roles = self.role_questions(target, taken={source, target}, sources=sources)
        return Answers(source, serial, target, duration, tuple(roles))

    def role_questions(
        self, session: str, *, taken: set[str], sources: list[str]
    ) -> list[RoleAnswer]:
        self.say(
            f"\nRoles to assume with {session}'s session, renewed with no prompt"
            " (Enter on an empty line to finish)."
        )
        roles: list[RoleAnswer] = []
        while True:
            arn = self.ask.value("Role ARN (Enter to finish)", None, _check_role_arn_or_end)
            if not arn:
                return roles
            name = self.ask.value(
                "Profile name for it",
                arn.rsplit("/", 1)[-1],
                lambda a: self.check_new_name(a, taken=taken, sources=sources),
            )
            duration = self.ask.value(
                "Role session duration",
                format_duration(ROLE_CHAINED_MAX),
                lambda a: _check_duration(a, ROLE_MIN, ROLE_MAX, "a role"),
            )
            if duration > ROLE_CHAINED_MAX:
                # As `credd check` does: a warning, not a refusal.
                self.say(
                    f"  {format_duration(duration)} will be capped to"
                    f" {format_duration(ROLE_CHAINED_MAX)}: AWS limits role chaining to 1 hour"
                )
            taken.add(name)
            roles.append(RoleAnswer(name, arn, duration))

    def source_profiles(self) -> list[str]:
        """Profiles that hold long-term keys (credentials file, the config, the keyring)."""
        in_keyring = sorted(self.keyring.profiles() or ())
        names = dict.fromkeys([*self.aws.credentials, *self.aws.config, *in_keyring])
        return [name for name in names if self.aws.has_long_term_keys(name)]

    def check_source(self, answer: str, sources: list[str]) -> tuple[str | None, str]:
        problem = section_name_problem(answer)
        if problem is not None:
            return None, f"not a profile name: {problem}"
        if answer not in sources:
            return None, f"{answer} has no long-term keys; one of: {', '.join(sources)}"
        return answer, ""

    def check_new_name(
        self, answer: str, *, taken: set[str], sources: list[str]
    ) -> tuple[str | None, str]:
        problem = section_name_problem(answer)
        if problem is not None:
            return None, f"not a profile name: {problem}"
        if answer in taken:
            return None, f"{answer} is already used here; choose another name"
        if answer in sources:
            return None, f"{answer} holds long-term keys that credd would overwrite"
        return answer, ""

    # -- writing ---------------------------------------------------------------

    def move_keys(self, source: str) -> None:
        writer = CredentialsWriter(self.credentials_file)
        where = display_path(self.credentials_file, self.env)
        try:
            stored = move_into_keyring(source, writer, self.keyring)
        except CreddError as error:
            self.say(f"keys not moved: {' '.join(error.message.split())}; they stay in {where}")
            return
        self.say(
            f"moved the keys of {source} ({mask_key_id(stored.access_key_id)}) into the"
            f" keyring and out of {where}\n"
        )

    def finish(self, answers: Answers, *, replace: bool, move_keys: bool) -> int:
        """Show what `credd check` says of the policy, ask about the service, then write
        (and move the keys, when that was asked for)."""
        text = render_policy(answers)
        try:
            policy = parse_policy(
                text, path=self.policy_path, env=self.env, in_keyring=self.keyring.holds
            )
        except PolicyError as error:  # the answers were checked one by one: a bug if seen
            self.say(error.message)
            self.say("nothing was written")
            return EXIT_INVALID
        problems = problem_lines(policy, self.keyring)
        self.say(f"\nThe policy, as `credd check` will read it ({self.policy_path}):\n")
        if problems:
            for line in problems:
                self.say(line)
        else:
            self.out.write(format_summary(policy))
        kind = _SERVICE_KIND.get(self.platform)
        install_kind = None
        if kind is not None and not problems:
            self.say("")
            if self.ask.yes(
                f"Install credd as a {kind} user service now (`credd install {kind}`)?"
            ):
                install_kind = kind
        try:
            self.written = write_policy(self.policy_path, text, replace=replace)
        except FileExistsError:
            self.say(f"{self.policy_path} appeared meanwhile; nothing was written")
            return EXIT_ABORTED
        self.say(f"\nwrote {self.written}")
        if move_keys:
            self.move_keys(answers.source_profile)
        if problems:
            self.say("\nFix the problems above, then run `credd check`.")
            if kind is not None:
                self.say(f"Not installed: run `credd install {kind}` once it checks.")
            return EXIT_INVALID
        self.say("")
        if install_kind is not None:
            result = install(
                install_kind,
                dry_run=False,
                force=False,
                env=self.env,
                out=self.out,
                python=self.python,
                err=self.out,
            )
            if result != 0:
                return EXIT_ABORTED
        else:
            if kind is not None:
                self.say(f"To run credd as a service later: `credd install {kind}`.")
            self.say("To run it in this terminal: `credd run`.")
        self.say(
            f"When {answers.target} needs a code: `credctl token CODE`, or keep"
            " `credctl prompt` open; a code_command in the policy can fetch it for you."
        )
        return EXIT_OK


def _check_serial(answer: str) -> tuple[str | None, str]:
    if not answer:
        return None, f"the MFA device's ARN is needed, such as {_MFA_EXAMPLE}"
    problem = mfa_serial_problem(answer)
    return (None, problem) if problem is not None else (answer, "")


def _check_role_arn_or_end(answer: str) -> tuple[str | None, str]:
    if not answer or ROLE_ARN.fullmatch(answer):
        return answer, ""
    return None, f"{show(answer)} is not a role ARN such as {_ROLE_EXAMPLE}"


def _check_duration(answer: str, low: int, high: int, what: str) -> tuple[int | None, str]:
    try:
        # Typed, not YAML: bare digits are seconds, as an integer in the policy is.
        seconds = int(answer) if answer.isascii() and answer.isdigit() else parse_duration(answer)
    except ValueError as error:
        return None, f"{error}"
    if not low <= seconds <= high:
        return None, (
            f"{format_duration(seconds)} is out of range for {what}:"
            f" {format_duration(low)} to {format_duration(high)}"
        )
    return seconds, ""
