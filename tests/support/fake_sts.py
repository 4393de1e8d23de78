"""A fault-injecting STS of our own, over real HTTP on 127.0.0.1.

moto accepts any MFA serial and code, so it cannot show what credd does when
AWS refuses a code, throttles, fails or hangs. `FakeSts` speaks enough of the
STS Query API (POST, form-encoded, XML answers in STS's own shapes and status
codes) for botocore and the AWS CLI:

- `GetSessionToken`, `AssumeRole`, `GetCallerIdentity`;
- unique fake session credentials (`ASIA...`) that expire `DurationSeconds`
  after the fake clock's now, and are themselves accepted (with their token)
  until then, so chains work;
- long-term keys: any `AKIA...` key, or only those in `valid_keys`;
- MFA codes: `expected_code`, or `code_validator(serial, code)` (e.g. with
  pyotp), else any six ASCII digits; a code accepted once for a serial is
  refused afterwards, as AWS does;
- STS's limits: GetSessionToken 900-129600 s and never with session
  credentials; AssumeRole at most 3600 s when chained on a session;
- faults on demand: `sts.fail_next("GetSessionToken", "reject_code")`.

Every request is recorded as an `StsCall` for assertions. Nothing is logged:
the handler's access log is silenced. Signatures are not verified.

    with FakeSts(expected_code="123456") as sts:
        os.environ["AWS_ENDPOINT_URL_STS"] = sts.url
        ...
        assert sts.calls[-1].action == "GetSessionToken"
"""

from __future__ import annotations

import re
import secrets
import string
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
ACCOUNT = "123456789012"
DEFAULT_USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"

MFA_FAILED = "MultiFactorAuthentication failed with invalid MFA one time pass code."
MFA_MISSING = "MultiFactorAuthentication failed, unable to validate MFA code."
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"
RATE_EXCEEDED = "Rate exceeded"
INTERNAL_FAILURE = (
    "The request processing has failed because of an unknown error, exception or failure."
)

_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/[^/,\s]+/aws4_request")
_CODE = re.compile(r"[0-9]{6}")
_ALNUM = string.ascii_uppercase + string.digits
_B64 = string.ascii_letters + string.digits + "+/"

FAULT_NAMES = frozenset(
    {
        "reject_code",
        "throttle",
        "http500",
        "hang",
        "invalid_client",
        "drop_connection",
        "access_denied",
        "validation_error",
    }
)


@dataclass(frozen=True)
class Fault:
    """One injected failure. Use the names as strings, or `hang(seconds)`."""

    name: str
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {self.name!r}; one of {sorted(FAULT_NAMES)}")


def hang(seconds: float) -> Fault:
    """A fault that holds the request `seconds` before answering it normally.

    The request is then served as usual (a code may be used up after the
    client gave up: AWS may do the same). Stopping the server ends the wait.
    """
    return Fault("hang", seconds)


@dataclass(frozen=True)
class StsCall:
    """One request as the fake saw it. The code is kept for assertions but never shown."""

    action: str
    access_key_id: str | None
    region: str | None
    serial: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    external_id: str | None = None
    duration: int | None = None
    code: str | None = field(default=None, repr=False)
    fault: str | None = None
    outcome: str = "ok"  # "ok", the AWS error code answered, or "dropped"

    @property
    def code_sent(self) -> bool:
        """True when the request carried a TokenCode."""
        return self.code is not None


@dataclass(frozen=True)
class _Issued:
    """Session credentials the fake handed out."""

    token: str
    expires_at: datetime
    arn: str
    user_id: str


@dataclass
class _Reply:
    status: int
    body: str = ""
    drop: bool = False


class _StsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


class FakeSts:
    """The STS double. Start it with `with FakeSts() as sts:` (or `start()`/`stop()`).

    Attributes tests may set at any time: `expected_code`, `code_validator`,
    `valid_keys` (None: any key), `user_arn`, `role_max_duration`, `clock`.
    """

    def __init__(
        self,
        *,
        expected_code: str | None = None,
        code_validator: Callable[[str, str], bool] | None = None,
        valid_keys: Iterable[str] | None = None,
        user_arn: str = DEFAULT_USER_ARN,
        role_max_duration: int = 43200,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.expected_code = expected_code
        self.code_validator = code_validator
        self.valid_keys: set[str] | None = set(valid_keys) if valid_keys is not None else None
        self.user_arn = user_arn
        self.role_max_duration = role_max_duration
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._faults: dict[str, deque[Fault]] = {}
        self._calls: list[StsCall] = []
        self._issued: dict[str, _Issued] = {}
        self._used_codes: set[tuple[str, str]] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_STS` or `--endpoint-url`."""
        if self._server is None:
            raise RuntimeError("FakeSts is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSts:
        """Listen on 127.0.0.1 on a free port and serve in a background thread."""
        handler = type("_BoundHandler", (_Handler,), {"sts": self})
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-sts",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests held by `hang` are released at once."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSts:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- programming and inspecting ----------------------------------------

    def fail_next(self, action: str, fault: Fault | str, times: int = 1) -> None:
        """Make the next `times` requests for `action` ("*": any action) fail with `fault`.

        Faults: "reject_code" (403 AccessDenied, AWS's wrong-code message),
        "throttle" (400 Throttling), "http500" (500 InternalFailure),
        `hang(seconds)`, "invalid_client" (403 InvalidClientTokenId),
        "drop_connection" (closed with no answer), "access_denied" (403
        AccessDenied, a policy denial), "validation_error" (400 ValidationError quoting
        the ExternalId sent, else the code, as AWS quotes what it refuses). Queued faults
        are used in order.
        """
        if isinstance(fault, str):
            if fault == "hang":
                raise ValueError("use hang(seconds)")
            fault = Fault(fault)
        with self._lock:
            self._faults.setdefault(action, deque()).extend([fault] * times)

    @property
    def calls(self) -> list[StsCall]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._calls)

    def calls_for(self, action: str) -> list[StsCall]:
        """The requests for one action, oldest first."""
        return [c for c in self.calls if c.action == action]

    def pending_faults(self) -> int:
        """How many programmed faults no request has taken yet."""
        with self._lock:
            return sum(len(queue) for queue in self._faults.values())

    def issued_keys(self) -> list[str]:
        """Access key ids of every session the fake has issued."""
        with self._lock:
            return list(self._issued)

    # -- serving ------------------------------------------------------------

    def _take_fault(self, action: str) -> Fault | None:
        with self._lock:
            for key in (action, "*"):
                queue = self._faults.get(key)
                if queue:
                    return queue.popleft()
        return None

    def handle(self, params: dict[str, str], headers: dict[str, str]) -> _Reply:
        """Answer one request (called from the HTTP handler's thread)."""
        action = params.get("Action", "")
        match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
        key_id, region = (match.group(1), match.group(2)) if match else (None, None)
        duration = params.get("DurationSeconds")
        call = StsCall(
            action=action,
            access_key_id=key_id,
            region=region,
            serial=params.get("SerialNumber"),
            role_arn=params.get("RoleArn"),
            session_name=params.get("RoleSessionName"),
            external_id=params.get("ExternalId"),
            duration=int(duration) if duration and duration.isdigit() else None,
            code=params.get("TokenCode"),
        )
        fault = self._take_fault(action)
        reply = self._reply(call, key_id, headers, fault)
        outcome = "ok"
        if reply.drop:
            outcome = "dropped"
        elif reply.status >= 300:
            found = re.search(r"<Code>([^<]*)</Code>", reply.body)
            outcome = found.group(1) if found else str(reply.status)
        with self._lock:
            self._calls.append(replace(call, fault=fault.name if fault else None, outcome=outcome))
        return reply

    def _reply(
        self, call: StsCall, key_id: str | None, headers: dict[str, str], fault: Fault | None
    ) -> _Reply:
        if fault is not None:
            if fault.name == "drop_connection":
                return _Reply(0, drop=True)
            if fault.name == "hang" and self._stopping.wait(fault.seconds):
                return _Reply(0, drop=True)
            faulted = self._fault_error(call, fault)
            if faulted is not None:
                return _error_reply(faulted)
        try:
            return _Reply(200, self._serve(call, key_id, headers.get("x-amz-security-token")))
        except _StsError as exc:
            return _error_reply(exc)

    def _fault_error(self, call: StsCall, fault: Fault) -> _StsError | None:
        arn = self.user_arn
        match fault.name:
            case "reject_code":
                return _StsError(403, "AccessDenied", MFA_FAILED)
            case "throttle":
                return _StsError(400, "Throttling", RATE_EXCEEDED)
            case "http500":
                return _StsError(500, "InternalFailure", INTERNAL_FAILURE)
            case "invalid_client":
                return _StsError(403, "InvalidClientTokenId", INVALID_TOKEN)
            case "access_denied":
                resource = f" on resource: {call.role_arn}" if call.role_arn else ""
                message = f"User: {arn} is not authorized to perform: sts:{call.action}{resource}"
                return _StsError(403, "AccessDenied", message)
            case "validation_error":
                # AWS quotes back the value it refuses: the ExternalId here, else the code.
                field_name, value = (
                    ("externalId", call.external_id)
                    if call.external_id
                    else ("tokenCode", call.code)
                )
                return _StsError(
                    400,
                    "ValidationError",
                    f"1 validation error detected: Value '{value}' at '{field_name}' failed to"
                    " satisfy constraint: Member must satisfy regular expression pattern:"
                    r" [\w+=,.@:/-]*",
                )
        return None

    def _serve(self, call: StsCall, key_id: str | None, token: str | None) -> str:
        if key_id is None:
            raise _StsError(
                403, "MissingAuthenticationToken", "Request is missing Authentication Token"
            )
        now = self.clock()
        with self._lock:
            session = self._issued.get(key_id)
        if session is not None:
            if token != session.token:
                raise _StsError(403, "InvalidClientTokenId", INVALID_TOKEN)
            if session.expires_at <= now:
                raise _StsError(403, "ExpiredToken", EXPIRED_TOKEN)
        elif not key_id.startswith("AKIA") or (
            self.valid_keys is not None and key_id not in self.valid_keys
        ):
            raise _StsError(403, "InvalidClientTokenId", INVALID_TOKEN)

        match call.action:
            case "GetCallerIdentity":
                arn = session.arn if session else self.user_arn
                user_id = session.user_id if session else "AIDA" + _random(_ALNUM, 17)
                return _document(
                    "GetCallerIdentity",
                    f"<Arn>{escape(arn)}</Arn><UserId>{escape(user_id)}</UserId>"
                    f"<Account>{ACCOUNT}</Account>",
                )
            case "GetSessionToken":
                if session is not None:
                    raise _StsError(
                        403, "AccessDenied", "Cannot call GetSessionToken with session credentials"
                    )
                duration = _duration(call.duration, default=43200, maximum=129600)
                self._check_code(call)
                creds = self._issue(now, duration, self.user_arn, "AIDA" + _random(_ALNUM, 17))
                return _document("GetSessionToken", creds)
            case "AssumeRole":
                if not call.role_arn or not call.session_name:
                    raise _StsError(400, "ValidationError", "RoleArn and RoleSessionName required")
                if session is not None:
                    if call.duration is not None and call.duration > 3600:
                        raise _StsError(
                            400,
                            "ValidationError",
                            "The requested DurationSeconds exceeds the 1 hour session limit "
                            "for roles assumed by role chaining.",
                        )
                    duration = _duration(call.duration, default=3600, maximum=3600)
                else:
                    duration = _duration(
                        call.duration, default=3600, maximum=self.role_max_duration
                    )
                self._check_code(call)
                role_name = call.role_arn.rsplit("/", 1)[-1]
                role_account = call.role_arn.split(":")[4] or ACCOUNT
                arn = f"arn:aws:sts::{role_account}:assumed-role/{role_name}/{call.session_name}"
                role_id = "AROA" + _random(_ALNUM, 17)
                user_id = f"{role_id}:{call.session_name}"
                creds = self._issue(now, duration, arn, user_id)
                return _document(
                    "AssumeRole",
                    f"<AssumedRoleUser><Arn>{escape(arn)}</Arn>"
                    f"<AssumedRoleId>{escape(user_id)}</AssumedRoleId></AssumedRoleUser>"
                    f"{creds}<PackedPolicySize>6</PackedPolicySize>",
                )
        raise _StsError(
            400,
            "InvalidAction",
            f"Could not find operation {call.action} for version 2011-06-15",
        )

    def _check_code(self, call: StsCall) -> None:
        if call.serial is None:
            return
        code = call.code
        if code is None:
            raise _StsError(403, "AccessDenied", MFA_MISSING)
        if self.code_validator is not None:
            valid = self.code_validator(call.serial, code)
        elif self.expected_code is not None:
            valid = code == self.expected_code
        else:
            valid = _CODE.fullmatch(code) is not None
        with self._lock:
            if not valid or (call.serial, code) in self._used_codes:
                raise _StsError(403, "AccessDenied", MFA_FAILED)
            self._used_codes.add((call.serial, code))

    def _issue(self, now: datetime, duration: int, arn: str, user_id: str) -> str:
        key_id = "ASIA" + _random(_ALNUM, 16)
        secret = _random(_B64, 40)
        token = "FwoGZXIvYXdzE" + _random(_B64, 300)
        expires_at = (now + timedelta(seconds=duration)).astimezone(UTC)
        with self._lock:
            self._issued[key_id] = _Issued(token, expires_at, arn, user_id)
        return (
            "<Credentials>"
            f"<AccessKeyId>{key_id}</AccessKeyId>"
            f"<SecretAccessKey>{escape(secret)}</SecretAccessKey>"
            f"<SessionToken>{escape(token)}</SessionToken>"
            f"<Expiration>{expires_at.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>"
            "</Credentials>"
        )


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as botocore expects; idle connections close after 5 s."""

    sts: FakeSts
    protocol_version = "HTTP/1.1"
    timeout = 5
    server_version = "FakeSTS"
    sys_version = ""

    def do_POST(self) -> None:
        """The Query API: form-encoded parameters in the body (and the query string)."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        self._answer(body)

    def do_GET(self) -> None:
        """The Query API with parameters in the query string only."""
        self._answer("")

    def _answer(self, body: str) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        params.update({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.sts.handle(params, headers)
        if reply.drop:
            self.close_connection = True
            return
        data = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Silenced: a GET's query string could hold a code."""


def _document(action: str, result: str) -> str:
    return (
        f'<{action}Response xmlns="{NAMESPACE}">'
        f"<{action}Result>{result}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    )


def _error_reply(error: _StsError) -> _Reply:
    kind = "Receiver" if error.status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{NAMESPACE}">'
        f"<Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>"
        f"<Message>{escape(error.message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    )
    return _Reply(error.status, body)


def _duration(value: int | None, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if not 900 <= value <= maximum:
        raise _StsError(
            400,
            "ValidationError",
            f"1 validation error detected: Value '{value}' at 'durationSeconds' failed to "
            f"satisfy constraint: Member must have value between 900 and {maximum}",
        )
    return value


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
