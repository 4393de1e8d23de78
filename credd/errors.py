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

# credctl's exit status for each fault (SPEC.md: 1 AWS said no, 2 bad input).
EXIT_FOR_FAULT: dict[int, int] = {
    Fault.BAD_REQUEST: 2,
    Fault.UNKNOWN_OP: 2,
    Fault.REQUEST_TOO_LARGE: 2,
    Fault.BAD_CODE: 2,
    Fault.UNKNOWN_PROFILE: 2,
    Fault.NOT_AN_MFA_PROFILE: 2,
    Fault.NOTHING_TO_RENEW: 1,
    Fault.CODE_REJECTED: 1,
    Fault.STS_FAILED: 1,
    Fault.NO_CREDENTIALS: 1,
    Fault.POLICY_INVALID: 2,
    Fault.INTERNAL: 1,
    Fault.ENDPOINT_UNAVAILABLE: 1,
}


class CreddError(Exception):
    """Base of every failure credd reports to a person.

    `fault` is the code sent over the socket; `exit_status` what a command
    exits with when this error ends it.
    """

    fault: int = Fault.INTERNAL
    exit_status: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadInputError(CreddError):
    """A person or client gave something malformed (a code, a name, a request)."""

    fault = Fault.BAD_REQUEST
    exit_status = 2

    def __init__(self, message: str, *, fault: int = Fault.BAD_REQUEST) -> None:
        super().__init__(message)
        self.fault = fault


class PolicyError(CreddError):
    """The policy is invalid. Holds every problem found, not only the first."""

    fault = Fault.POLICY_INVALID
    exit_status = 2

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{path}: policy is invalid ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class CredentialsFileError(CreddError):
    """The credentials file cannot be parsed, so it is never rewritten."""

    exit_status = 2

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}; fix the file by hand, credd will not rewrite it")


class FileWriteError(CreddError):
    """Writing a file failed (disk full, read-only, permissions); the original is untouched."""

    exit_status = 1


class CodeRejectedError(CreddError):
    """AWS refused the MFA code (wrong, reused or expired). Never resent."""

    fault = Fault.CODE_REJECTED
    exit_status = 1


class StsError(CreddError):
    """STS refused the request for a reason a retry will not fix (bad keys, no such role)."""

    fault = Fault.STS_FAILED
    exit_status = 1


class StsTransientError(CreddError):
    """STS could not be reached, timed out, throttled or failed (5xx): worth retrying."""

    fault = Fault.STS_FAILED
    exit_status = 1


class NoCredentialsError(CreddError):
    """No valid credentials are held for a profile (credential-process)."""

    fault = Fault.NO_CREDENTIALS
    exit_status = 1


class EndpointUnavailableError(CreddError):
    """The local credentials endpoint cannot serve a new token (its port is taken, or too
    many tokens are live)."""

    fault = Fault.ENDPOINT_UNAVAILABLE
    exit_status = 1


class DaemonUnreachableError(CreddError):
    """No credd answers on the control socket."""

    exit_status = 3
