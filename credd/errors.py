"""The one error hierarchy of credd, and the stable fault codes that cross the socket.

Standard library only: `credctl` imports this module.

Every message says what went wrong, where, and what to do. No message ever
holds a secret: callers pass names, paths, line numbers and masked key ids,
never values read from a credentials file or typed by a person.
"""

from __future__ import annotations


class Fault:
    """Stable error codes on the control socket (docs/protocol.md).

    Plain ints in a namespace, as Supervisor's `Faults`, not an IntEnum: `credctl`
    imports this module, and `enum` alone costs it ~7 ms of a ~25 ms start (bench/).
    """

    BAD_REQUEST = 10  # not JSON, not an object, missing or wrong-typed field
    UNKNOWN_OP = 11
    REQUEST_TOO_LARGE = 12
    BAD_CODE = 20  # not exactly six ASCII digits
    UNKNOWN_PROFILE = 21
    NOT_AN_MFA_PROFILE = 22
    NOTHING_TO_RENEW = 23
    CODE_REJECTED = 30  # AWS said no (wrong, reused or expired code)
    STS_FAILED = 31  # AWS could not be reached or failed; nothing renewed
    NO_CREDENTIALS = 32  # credential-process: nothing valid held
    POLICY_INVALID = 40
    INTERNAL = 50
    ENDPOINT_UNAVAILABLE = 60  # the local endpoint cannot listen, or holds too many tokens


# Each code's name on the wire ("error": {"code": 21, "name": "UNKNOWN_PROFILE", ...}).
FAULT_NAMES: dict[int, str] = {
    code: name for name, code in vars(Fault).items() if name.isupper() and isinstance(code, int)
}

# The exit statuses of `credd` and `credctl` (SPEC.md).
EXIT_OK = 0
EXIT_FAILED = 1  # AWS said no, or something failed
EXIT_BAD_INPUT = 2
EXIT_NO_DAEMON = 3  # no credd answers, or none that credctl can trust
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it
EXIT_READER_GONE = 141  # stdout's reader left first: 128 + SIGPIPE, as shells report it

# credctl's exit status for each fault the daemon answers with (docs/protocol.md).
EXIT_FOR_FAULT: dict[int, int] = {
    Fault.BAD_REQUEST: EXIT_BAD_INPUT,
    Fault.UNKNOWN_OP: EXIT_BAD_INPUT,
    Fault.REQUEST_TOO_LARGE: EXIT_BAD_INPUT,
    Fault.BAD_CODE: EXIT_BAD_INPUT,
    Fault.UNKNOWN_PROFILE: EXIT_BAD_INPUT,
    Fault.NOT_AN_MFA_PROFILE: EXIT_BAD_INPUT,
    Fault.NOTHING_TO_RENEW: EXIT_FAILED,
    Fault.CODE_REJECTED: EXIT_FAILED,
    Fault.STS_FAILED: EXIT_FAILED,
    Fault.NO_CREDENTIALS: EXIT_FAILED,
    Fault.POLICY_INVALID: EXIT_BAD_INPUT,
    Fault.INTERNAL: EXIT_FAILED,
    Fault.ENDPOINT_UNAVAILABLE: EXIT_FAILED,
}


class CreddError(Exception):
    """Base of every failure credd reports to a person.

    `fault` is the code sent over the socket; `exit_status` what a command
    exits with when this error ends it (from `EXIT_FOR_ERROR`, never set by a class).
    """

    fault: int = Fault.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def exit_status(self) -> int:
        """What `credd` or `credctl` exits with when this error ends the command."""
        return _exit_status(self)


class BadInputError(CreddError):
    """A person or client gave something malformed (a code, a name, a request)."""

    fault = Fault.BAD_REQUEST

    def __init__(self, message: str, *, fault: int = Fault.BAD_REQUEST) -> None:
        super().__init__(message)
        self.fault = fault


class PolicyError(CreddError):
    """The policy is invalid. Holds every problem found, not only the first."""

    fault = Fault.POLICY_INVALID

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{path}: policy is invalid ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class CredentialsFileError(CreddError):
    """The credentials file cannot be parsed, so it is never rewritten."""

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}; fix the file by hand, credd will not rewrite it")


class FileWriteError(CreddError):
    """Writing a file failed (disk full, read-only, permissions); the original is untouched."""


class CodeRejectedError(CreddError):
    """AWS refused the MFA code (wrong, reused or expired). Never resent."""

    fault = Fault.CODE_REJECTED


class StsError(CreddError):
    """STS refused the request for a reason a retry will not fix (bad keys, no such role)."""

    fault = Fault.STS_FAILED


class StsTransientError(CreddError):
    """STS could not be reached, timed out, throttled or failed (5xx): worth retrying."""

    fault = Fault.STS_FAILED


class KeyringError(CreddError):
    """The OS keyring is locked, absent, or refused: the keys it holds cannot be used now."""


class NoCredentialsError(CreddError):
    """No valid credentials are held for a profile (credential-process)."""

    fault = Fault.NO_CREDENTIALS


class EndpointUnavailableError(CreddError):
    """The local credentials endpoint cannot serve a new token (its port is taken, or too
    many tokens are live)."""

    fault = Fault.ENDPOINT_UNAVAILABLE


class DaemonUnreachableError(CreddError):
    """No credd answers on the control socket."""


class UntrustedDaemonError(DaemonUnreachableError):
    """The socket's directory or the process listening is not the user's own: nothing is sent.

    Under the `$TMPDIR`/`/tmp` fallback another user can make the directory first
    and listen there, to be handed a code or to hand out credentials of their own.
    """


class RemoteError(CreddError):
    """The daemon answered with an error; its fault decides credctl's exit status."""

    def __init__(self, fault: int, message: str) -> None:
        super().__init__(message)
        self.fault = fault


class SocketPathError(CreddError):
    """The daemon's socket path or its directory cannot be used safely."""


class AlreadyRunningError(CreddError):
    """Another credd holds the socket."""


# The one place that maps errors to exit statuses, for `credd` and `credctl` alike. An
# answer of the daemon's (RemoteError) exits by its fault; any other error by its class,
# the nearest listed among the class and its bases. Classes do not set their own.
EXIT_FOR_ERROR: dict[type, int] = {
    CreddError: EXIT_FAILED,
    BadInputError: EXIT_BAD_INPUT,
    PolicyError: EXIT_BAD_INPUT,
    CredentialsFileError: EXIT_BAD_INPUT,
    FileWriteError: EXIT_FAILED,
    CodeRejectedError: EXIT_FAILED,
    StsError: EXIT_FAILED,
    StsTransientError: EXIT_FAILED,
    NoCredentialsError: EXIT_FAILED,
    EndpointUnavailableError: EXIT_FAILED,
    KeyringError: EXIT_FAILED,
    DaemonUnreachableError: EXIT_NO_DAEMON,
    UntrustedDaemonError: EXIT_NO_DAEMON,
    SocketPathError: EXIT_BAD_INPUT,
    AlreadyRunningError: EXIT_FAILED,
}


def _exit_status(error: CreddError) -> int:
    if isinstance(error, RemoteError):
        return EXIT_FOR_FAULT.get(error.fault, EXIT_FAILED)
    return next(EXIT_FOR_ERROR[cls] for cls in type(error).__mro__ if cls in EXIT_FOR_ERROR)
