"""`credctl exec`: run a command with a profile's credentials, kept fresh by credd.

Standard library only (credctl's rule). The command's environment points its SDK at
the daemon's local endpoint with a token bound to the profile; the SDK asks it again
whenever its credentials near their expiry, so a long run never holds a stale session.
With `--env` the command gets static keys instead, for tools that read no endpoint.

The command runs as a child, in credctl's process group, so a terminal's Ctrl-C reaches
it directly. SIGINT, SIGTERM, SIGHUP and SIGQUIT that another process sends credctl are
passed on to it; credctl then exits with the child's status (128+N when a signal N ended
it, as shells report it; 127 when it could not be started) after revoking the token.
"""

from __future__ import annotations

import os
import sys

from credd.ctl.client import Client
from credd.errors import BadInputError, CreddError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
    from collections.abc import Mapping, Sequence
    from typing import Any
else:
    # `_signal`, the C module under `signal`: same functions, plain ints. `signal` wraps
    # its numbers in enums, and `enum` with `contextlib` (try/except here instead) cost
    # `credctl exec` 5 ms of a 22 ms run (docs/performance.md, #9).
    try:
        import _signal as signal
    except ImportError:  # not CPython
        import signal

# Every variable by which an SDK would find other credentials than the ones given here,
# or another profile, or another endpoint: removed from the command's environment.
# (botocore prefers the _RELATIVE_ URI to the full one, and the token file to the token.)
SHADOWING = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# Revoking is one short request; a daemon that does not answer in this long is left to
# end the token at its --ttl.
REVOKE_TIMEOUT_SECONDS = 5.0
CANNOT_RUN = 127


def endpoint_environment(
    env: Mapping[str, str], *, url: str, token: str, region: str
) -> dict[str, str]:
    """The command's environment in endpoint mode.

    SDKs look for a `[default]` profile in the credentials file before they ask an
    endpoint, and a credd user's file usually holds long-term keys there: the command
    is pointed at an empty credentials file so that the endpoint is what it uses.
    """
    child = _cleaned(env, region)
    child["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url
    child["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = token
    child["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    return child


def static_environment(
    env: Mapping[str, str], *, credentials: Mapping[str, str], region: str
) -> dict[str, str]:
    """The command's environment with `--env`: static keys, which SDKs prefer to anything."""
    child = _cleaned(env, region)
    child["AWS_ACCESS_KEY_ID"] = credentials["AccessKeyId"]
    child["AWS_SECRET_ACCESS_KEY"] = credentials["SecretAccessKey"]
    if credentials.get("SessionToken"):
        child["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
    child["AWS_CREDENTIAL_EXPIRATION"] = credentials["Expiration"]
    return child


def _cleaned(env: Mapping[str, str], region: str) -> dict[str, str]:
    child = {name: value for name, value in env.items() if name not in SHADOWING}
    # A region the person chose (either variable) is theirs; else the profile's, in both
    # (the AWS CLI v1 reads only AWS_DEFAULT_REGION, most SDKs AWS_REGION first).
    if not child.get("AWS_REGION") and not child.get("AWS_DEFAULT_REGION"):
        child["AWS_REGION"] = child["AWS_DEFAULT_REGION"] = region
    return child


def exec_command(
    client: Client, *, profile: str, static: bool, ttl: int, argv: Sequence[str]
) -> int:
    """Run `argv` with `profile`'s credentials; return the exit status credctl ends with."""
    if not argv:
        raise BadInputError("give the command to run after --: credctl exec PROFILE -- COMMAND")
    if static:
        result = client.request("env-credentials", profile=profile)
        env = static_environment(
            os.environ, credentials=result["credentials"], region=result["region"]
        )
        return run(argv, env)
    result = client.request("endpoint-token", profile=profile, ttl=ttl)
    token: str = result["token"]
    try:
        if not result.get("valid"):
            sys.stderr.write(
                f"credctl: warning: credd holds no valid credentials for {profile} yet "
                f"({result.get('state')}); the command is refused them until it does\n"
            )
        env = endpoint_environment(
            os.environ, url=result["url"], token=token, region=result["region"]
        )
        return run(argv, env)
    finally:
        _revoke(client, token)


def _revoke(client: Client, token: str) -> None:
    revoker = Client(client.path, timeout=REVOKE_TIMEOUT_SECONDS)
    try:  # noqa: SIM105 (contextlib is not loaded on credctl's paths)
        revoker.request("endpoint-revoke", token=token)
    except CreddError:
        pass  # a daemon that stopped meanwhile took its tokens with it


def run(argv: Sequence[str], env: Mapping[str, str], *, precise: bool | None = None) -> int:
    """Run `argv` as a child, passing on signals, until it ends; its exit status, shell-style.

    `precise` (the default where the OS can say who sent a signal: Linux, the BSDs) passes
    on only the signals another process sent, not those a terminal sent its whole
    foreground process group (a Ctrl-C): the child has one of those already, and a
    second SIGINT makes programs such as terraform abandon their clean-up. Elsewhere
    every signal is passed on.
    """
    if precise is None:
        precise = hasattr(signal, "sigtimedwait")
    if precise:
        return _run_precisely(argv, env)
    return _run_forwarding_all(argv, env)


def _run_precisely(argv: Sequence[str], env: Mapping[str, str]) -> int:
    watched = {signal.SIGCHLD, *FORWARDED}
    # Blocked before the child starts, so no signal (its SIGCHLD above all) is missed.
    before = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        pid = _spawn(argv, env, sigmask=before)
        if pid is None:
            return CANNOT_RUN
        while True:
            info = signal.sigtimedwait(watched, 1.0)
            # si_code <= 0: sent by a process (kill, sigqueue, tkill); > 0: by the kernel,
            # which is how a terminal's Ctrl-C or hang-up arrives.
            if info is not None and info.si_signo != signal.SIGCHLD and info.si_code <= 0:
                _pass_on(pid, info.si_signo)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return _exit_status(status)
    finally:
        while signal.sigtimedwait(watched, 0) is not None:
            pass  # already handled, or for a child that is gone: not for credctl itself
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _run_forwarding_all(argv: Sequence[str], env: Mapping[str, str]) -> int:
    pid = _spawn(argv, env, sigmask=None)
    if pid is None:
        return CANNOT_RUN
    previous: dict[int, Any] = {}
    try:
        for signum in FORWARDED:
            previous[signum] = signal.signal(signum, lambda n, _frame: _pass_on(pid, n))
        _, status = os.waitpid(pid, 0)  # retried after each handler runs (PEP 475)
        return _exit_status(status)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _spawn(argv: Sequence[str], env: Mapping[str, str], *, sigmask: Any) -> int | None:
    """Start the child (PATH searched as a shell does); None when it cannot be run."""
    try:
        if sigmask is None:
            return os.posix_spawnp(argv[0], list(argv), dict(env))
        return os.posix_spawnp(argv[0], list(argv), dict(env), setsigmask=sigmask)
    except OSError as error:
        sys.stderr.write(f"credctl: error: cannot run {argv[0]}: {error.strerror or error}\n")
        return None


def _pass_on(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 (contextlib is not loaded on credctl's paths)
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # it has just ended: collected next


def _exit_status(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def ttl_seconds(text: str | None, *, default: int, most: int) -> int:
    """`--ttl` in seconds (`12h`, `90m`, `45s`...); BadInputError when out of range."""
    if text is None:
        return default
    from credd.durations import parse_duration  # `re`: not on credctl's timed paths

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        raise BadInputError(f"--ttl {error}") from None
    if not 0 < seconds <= most:
        raise BadInputError(f"--ttl must be from 1s to {most // 3600}h")
    return seconds


def exec_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `exec_command` from credctl's parsed command line."""
    from credd import protocol

    return {
        "profile": args["profile"],
        "static": bool(args["env"]),
        "ttl": ttl_seconds(
            args["ttl"],
            default=protocol.TOKEN_TTL_DEFAULT_SECONDS,
            most=protocol.TOKEN_TTL_MAX_SECONDS,
        ),
        "argv": list(args["argv"]),
    }
