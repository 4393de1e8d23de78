"""The STS adapter: GetSessionToken and AssumeRole over botocore. The only home of boto3/botocore.

Every botocore failure leaves this module as one of credd's own errors:

- `CodeRejectedError`: AWS refused the MFA code (wrong, reused or expired);
  the code must never be resent.
- `StsTransientError`: throttling, 5xx, timeouts, connection failures; the
  caller retries with its own backoff (botocore's retries are off, so one
  call is one request and a TOTP code is never sent twice behind our back).
- `StsError`: everything a retry will not fix (bad keys, expired source
  session, no such role, region disabled), with AWS's code and message.

No message, exception argument or chained exception holds a secret, a
session token or the code: errors are raised outside the `except` block so
that botocore's exception (whose repr may hold request parameters) is not
even attached as `__context__`, and AWS's text is scrubbed of the values sent.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from credd import __version__
from credd.adapters.pacing import Pacer
from credd.credentials import Credentials, mask_key_id, parse_utc
from credd.errors import (
    BadInputError,
    CodeRejectedError,
    CreddError,
    StsError,
    StsTransientError,
)

log = logging.getLogger(__name__)

# Loggers whose DEBUG output prints request parameters (the TOTP code) and STS
# responses (the secret and the session token).
AWS_LOGGERS = ("botocore", "boto3", "urllib3")
# Says which endpoint setting it used, at INFO, on every STS call: noise in credd's log.
CHATTY_LOGGERS = ("botocore.configprovider",)

DEFAULT_MAX_CLIENTS = 32
# How long one STS call may take to answer (`CREDD_STS_READ_TIMEOUT`); connecting, 5 s.
DEFAULT_READ_TIMEOUT = 15.0
MAX_READ_TIMEOUT = 300.0
READ_TIMEOUT_VARIABLE = "CREDD_STS_READ_TIMEOUT"

CODE_REJECTED_HINT = "the code was not accepted (wrong, already used, or expired); feed a fresh one"

# AWS error codes worth retrying. Any HTTP 5xx (and 429) is retried too.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "IDPCommunicationError",
    }
)

# AccessDenied is how STS says "wrong MFA code"; these codes mean the same.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})

# An AccessDenied with one of these is about permissions or the kind of keys,
# not the code: a fresh code would be refused the same way, so it is a plain
# StsError (and the person is not asked for code after code).
_NOT_ABOUT_THE_CODE = ("is not authorized to perform", "with session credentials")

# What to do about the usual permanent failures.
_HINTS: Mapping[str, str] = {
    "InvalidClientTokenId": "check the source profile's access key id (deleted or inactive?)",
    "UnrecognizedClientException": "check the source profile's access key id",
    "SignatureDoesNotMatch": "check the source profile's secret access key",
    "ExpiredToken": "the source session has expired; renew it first",
    "ExpiredTokenException": "the source session has expired; renew it first",
    "RegionDisabledException": "activate STS in this region (IAM account settings) or use another",
}

_MAX_AWS_MESSAGE = 400


class StsClient(Protocol):
    """What credd needs from STS. `Boto3Sts` is the real one; tests may pass a fake."""

    def get_session_token(
        self, *, source: Credentials, region: str, serial: str, code: str, duration: int
    ) -> Credentials:
        """An MFA session for the long-term keys `source`, proven with `code` from `serial`."""
        ...

    def assume_role(
        self,
        *,
        source: Credentials,
        region: str,
        role_arn: str,
        session_name: str,
        duration: int,
        external_id: str | None = None,
        serial: str | None = None,
        code: str | None = None,
    ) -> Credentials:
        """Role credentials for `role_arn`, signed with `source` (long-term keys or a session)."""
        ...


def read_timeout_from(env: Mapping[str, str]) -> float:
    """`CREDD_STS_READ_TIMEOUT` in seconds, or a clear error for a bad value."""
    text = env.get(READ_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_READ_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds <= MAX_READ_TIMEOUT:  # NaN fails too
        raise BadInputError(
            f"{READ_TIMEOUT_VARIABLE}={text[:20]!r} is not a number of seconds above 0 and at"
            f" most {MAX_READ_TIMEOUT:g} (how long one STS call may take; default"
            f" {DEFAULT_READ_TIMEOUT:g})"
        )
    return seconds


def quiet_aws_loggers() -> None:
    """Keep the AWS SDK's loggers at INFO or above, whatever the root level.

    botocore's DEBUG output holds the TOTP code and STS's answer (secret and
    session token). Child loggers someone set below INFO are raised too, and the
    chatty ones (`CHATTY_LOGGERS`) to WARNING.
    """
    manager = logging.Logger.manager
    names = [
        name
        for name in list(manager.loggerDict)
        if any(name == top or name.startswith(top + ".") for top in AWS_LOGGERS)
    ]
    for name in {*AWS_LOGGERS, *names}:
        logger = logging.getLogger(name)
        top_level = name in AWS_LOGGERS
        if logger.level < logging.INFO and (top_level or logger.level != logging.NOTSET):
            logger.setLevel(logging.INFO)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class AwsClients:
    """The one botocore session credd makes its AWS clients from: STS, and IAM for rotation.

    One, not one per adapter: each session loads botocore's endpoint data and service
    models anew, and an idle daemon kept them twice (7.8 MiB, docs/performance.md #3).
    Making a client from a session is not thread-safe in botocore; the lock makes it so.
    The clients, once made, are.
    """

    def __init__(self, session: Any = None) -> None:
        """`session`: a botocore session (tests pass a stand-in); a new one by default."""
        self._session: Any = session if session is not None else botocore.session.Session()
        self._lock = threading.Lock()

    def create(self, service: str, **settings: Any) -> Any:
        """A new botocore client for `service`."""
        with self._lock:
            return self._session.create_client(service, **settings)


class Boto3Sts:
    """`StsClient` over botocore. Thread-safe: the daemon calls it from a small pool.

    One botocore session is created once; clients (costly to build) are kept
    in a small LRU keyed by region and source credentials. Each client gets
    the source keys explicitly, so no credentials file or environment keys
    are ever read; endpoint settings (`AWS_ENDPOINT_URL_STS`,
    `AWS_ENDPOINT_URL`), `AWS_CA_BUNDLE` and proxies apply as to any boto3
    program. `pacer` bounds the calls in flight and their start rate (pacing.py);
    `aws` is where clients come from (shared with the IAM adapter); `max_clients`
    bounds the cache.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_clients: int = DEFAULT_MAX_CLIENTS,
        pacer: Pacer | None = None,
        aws: AwsClients | None = None,
    ) -> None:
        quiet_aws_loggers()
        self._pacer = pacer if pacer is not None else Pacer()
        self.aws = aws if aws is not None else AwsClients()
        self._config = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra=f"credd/{__version__}",
            # One connection per call in flight: botocore's default pool holds 10.
            max_pool_connections=self._pacer.concurrency,
        )
        self._max_clients = max(1, max_clients)
        self._clients: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._lock = threading.Lock()  # for the cache

    @property
    def concurrency(self) -> int:
        """How many calls this client makes at once at most (its pacer's)."""
        return self._pacer.concurrency

    def get_session_token(
        self, *, source: Credentials, region: str, serial: str, code: str, duration: int
    ) -> Credentials:
        """STS GetSessionToken with SerialNumber and TokenCode. See the module doc for errors."""
        params = {"SerialNumber": serial, "TokenCode": code, "DurationSeconds": duration}
        where = f"for {serial}"
        return self._call("GetSessionToken", source, region, params, code=code, where=where)

    def assume_role(
        self,
        *,
        source: Credentials,
        region: str,
        role_arn: str,
        session_name: str,
        duration: int,
        external_id: str | None = None,
        serial: str | None = None,
        code: str | None = None,
    ) -> Credentials:
        """STS AssumeRole, with an MFA code when the source holds long-term keys."""
        params: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration,
        }
        if external_id is not None:
            params["ExternalId"] = external_id
        if serial is not None:
            params["SerialNumber"] = serial
        if code is not None:
            params["TokenCode"] = code
        where = f"of {role_arn}" + (f" with {serial}" if serial else "")
        return self._call("AssumeRole", source, region, params, code=code, where=where)

    def _call(
        self,
        operation: str,
        source: Credentials,
        region: str,
        params: dict[str, Any],
        *,
        code: str | None,
        where: str,
    ) -> Credentials:
        # Every value sent that is not for all to see: AWS's error text may quote it back
        # (a ValidationError does: "Value '...' at 'externalId' failed to satisfy ...").
        sent = (source.secret_access_key, source.session_token, code, params.get("ExternalId"))
        secrets = [s for s in sent if s]
        error: CreddError
        try:
            client = self._client(source, region)
            method: Callable[..., dict[str, Any]] = (
                client.get_session_token if operation == "GetSessionToken" else client.assume_role
            )
            with self._pacer.slot():
                response = method(**params)
        except ClientError as exc:
            error = _client_error(
                exc,
                operation=operation,
                source=source,
                region=region,
                where=where,
                code=code,
                secrets=secrets,
            )
        except BotoCoreError as exc:
            error = _botocore_error(exc, operation, source, region, secrets)
        else:
            result = _credentials_from(response)
            if result is not None:
                log.debug("STS %s %s: %s", operation, where, result)
                return result
            error = StsTransientError(
                f"STS {operation} {where} in {region}: no credentials in the answer (temporary)"
            )
        # Raised here, outside `except`, so botocore's exception is not even chained.
        raise error

    def _client(self, source: Credentials, region: str) -> Any:
        """A cached STS client for these source credentials and region."""
        digest = hashlib.sha256(
            "\0".join((source.secret_access_key, source.session_token or "")).encode()
        ).hexdigest()
        key = (region, source.access_key_id, digest)
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
            client = self.aws.create(
                "sts",
                region_name=region,
                aws_access_key_id=source.access_key_id,
                aws_secret_access_key=source.secret_access_key,
                aws_session_token=source.session_token,
                config=self._config,
            )
            self._clients[key] = client
            while len(self._clients) > self._max_clients:
                self._clients.popitem(last=False)
            return client


def _credentials_from(response: Mapping[str, Any]) -> Credentials | None:
    """The credentials in an STS answer, expiry as aware UTC; None when they are missing."""
    creds = response.get("Credentials") or {}
    expiration = creds.get("Expiration")
    if isinstance(expiration, str):
        expiration = parse_utc(expiration)
    if not isinstance(expiration, datetime) or not all(
        creds.get(k) for k in ("AccessKeyId", "SecretAccessKey", "SessionToken")
    ):
        return None
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)
    return Credentials(
        access_key_id=creds["AccessKeyId"],
        secret_access_key=creds["SecretAccessKey"],
        session_token=creds["SessionToken"],
        expires_at=expiration.astimezone(UTC),
    )


def _scrub(text: str, secrets: list[str]) -> str:
    """AWS's own text, one line, bounded, with any value we sent replaced."""
    for secret in secrets:
        text = text.replace(secret, "****")
    text = " ".join(text.split())
    if len(text) > _MAX_AWS_MESSAGE:
        text = text[: _MAX_AWS_MESSAGE - 3] + "..."
    return text


def _client_error(
    exc: ClientError,
    *,
    operation: str,
    source: Credentials,
    region: str,
    where: str,
    code: str | None,
    secrets: list[str],
) -> CreddError:
    """Map an error answer from STS to credd's error for it."""
    response: Mapping[str, Any] = getattr(exc, "response", None) or {}
    err: Mapping[str, Any] = response.get("Error") or {}
    aws_code = str(err.get("Code") or "Unknown")
    aws_message = _scrub(str(err.get("Message") or "no message"), secrets)
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    request_id = meta.get("RequestId")
    said = f"{aws_code}: {aws_message}" + (f" (request id {request_id})" if request_id else "")

    if aws_code in TRANSIENT_CODES or (
        isinstance(status, int) and (status >= 500 or status == 429)
    ):
        return StsTransientError(f"STS {operation} {where} in {region} failed (temporary): {said}")
    if (
        code is not None
        and aws_code in ACCESS_DENIED_CODES
        and not any(marker in aws_message for marker in _NOT_ABOUT_THE_CODE)
    ):
        return CodeRejectedError(
            f"STS {operation} {where} refused the MFA code: {said}; {CODE_REJECTED_HINT}"
        )
    hint = _HINTS.get(aws_code)
    key = mask_key_id(source.access_key_id)
    return StsError(
        f"STS {operation} {where} with key {key} in {region} refused: {said}"
        + (f"; {hint}" if hint else "")
    )


def _botocore_error(
    exc: BotoCoreError, operation: str, source: Credentials, region: str, secrets: list[str]
) -> CreddError:
    """Map a failure before or around the HTTP exchange to credd's error for it."""
    name = type(exc).__name__
    # Its text names the endpoint URL, or (ParamValidationError) quotes the
    # values sent, the code among them: scrubbed either way.
    detail = _scrub(str(exc), secrets)
    if isinstance(exc, HTTPClientError | BotoConnectionError):
        return StsTransientError(
            f"STS {operation} in {region} failed (temporary): {name}: {detail}"
        )
    if isinstance(exc, ParamValidationError):
        return StsError(f"STS {operation} in {region}: invalid request: {detail}")
    key = mask_key_id(source.access_key_id)
    return StsError(f"STS {operation} with key {key} in {region} failed: {name}: {detail}")
