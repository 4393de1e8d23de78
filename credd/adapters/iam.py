"""The IAM adapter: an IAM user's access keys, for rotation. boto3/botocore's second module.

boto3 and botocore live in `credd.adapters` alone: STS in `sts`, IAM here (the
import-linter contract in pyproject.toml says so). Like `sts`, this module builds
clients with explicit credentials (never the credentials file or environment
keys); endpoint settings apply as to any boto3 program: `AWS_ENDPOINT_URL_IAM`
(and `AWS_ENDPOINT_URL_STS` for GetCallerIdentity), then `AWS_ENDPOINT_URL`.
botocore's retries are off: a CreateAccessKey is one request, never two.

Every failure leaves as `IamError` (a retry will not fix it) or `IamTransientError`
(throttling, 5xx, network), with AWS's text scrubbed of the secrets sent and no
botocore exception chained. A new key's secret appears only in `NewKey`, whose
repr hides it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from credd import __version__
from credd.adapters.sts import TRANSIENT_CODES, AwsClients, quiet_aws_loggers
from credd.credentials import Credentials, mask_key_id
from credd.errors import CreddError, Fault

log = logging.getLogger(__name__)

_MAX_AWS_MESSAGE = 300


class IamError(CreddError):
    """IAM refused, for a reason a retry will not fix (permissions, no such key)."""

    fault = Fault.STS_FAILED


class IamTransientError(IamError):
    """Throttling, a 5xx, or the network: worth another try later."""


class NoSuchKeyError(IamError):
    """The access key named is not (or no longer) the user's."""


@dataclass(frozen=True)
class AccessKeyInfo:
    """One access key as ListAccessKeys describes it (no secret)."""

    access_key_id: str
    status: str  # Active or Inactive
    created_at: datetime

    def __repr__(self) -> str:
        return f"AccessKeyInfo({mask_key_id(self.access_key_id)}, {self.status})"


@dataclass(frozen=True, repr=False)
class NewKey:
    """A key CreateAccessKey just made: the only time IAM shows its secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    created_at: datetime | None = None

    def __repr__(self) -> str:
        return f"NewKey({mask_key_id(self.access_key_id)})"

    __str__ = __repr__

    def credentials(self) -> Credentials:
        """The key as credentials to sign with."""
        return Credentials(self.access_key_id, self.secret_access_key)


class IamClient(Protocol):
    """What rotation needs from IAM (and STS's GetCallerIdentity). `Boto3Iam` is the real one."""

    def caller_arn(self, keys: Credentials, region: str) -> str:
        """The ARN GetCallerIdentity answers for `keys`."""
        ...

    def list_keys(self, signer: Credentials, region: str, user: str) -> list[AccessKeyInfo]:
        """ListAccessKeys for `user`."""
        ...

    def create_key(self, signer: Credentials, region: str, user: str) -> NewKey:
        """CreateAccessKey for `user`."""
        ...

    def deactivate_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        """UpdateAccessKey `key_id` to Inactive."""
        ...

    def delete_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        """DeleteAccessKey `key_id`."""
        ...


def user_name_from_arn(arn: str) -> str | None:
    """`arn:aws:iam::123456789012:user/path/NAME` -> `NAME`; None for anything but a user."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("user/"):
        return None
    return parts[5].rsplit("/", 1)[-1] or None


class Boto3Iam:
    """`IamClient` over botocore; thread-safe enough for the daemon's pool (one client per
    call: rotation is rare)."""

    def __init__(
        self, *, connect_timeout: float = 5, read_timeout: float = 15, aws: AwsClients | None = None
    ) -> None:
        quiet_aws_loggers()
        # The daemon passes its STS adapter's: one botocore session (sts.AwsClients).
        self._aws = aws if aws is not None else AwsClients()
        self._config = Config(
            retries={"total_max_attempts": 1},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            user_agent_extra=f"credd/{__version__}",
        )

    def caller_arn(self, keys: Credentials, region: str) -> str:
        answer = self._call("sts", "GetCallerIdentity", keys, region, {})
        return str(answer.get("Arn") or "")

    def list_keys(self, signer: Credentials, region: str, user: str) -> list[AccessKeyInfo]:
        answer = self._call("iam", "ListAccessKeys", signer, region, {"UserName": user})
        keys = []
        for item in answer.get("AccessKeyMetadata") or []:
            created = item.get("CreateDate")
            if isinstance(created, datetime):
                created = created if created.tzinfo else created.replace(tzinfo=UTC)
            else:
                created = datetime.fromtimestamp(0, UTC)
            keys.append(
                AccessKeyInfo(
                    str(item.get("AccessKeyId")), str(item.get("Status")), created.astimezone(UTC)
                )
            )
        return keys

    def create_key(self, signer: Credentials, region: str, user: str) -> NewKey:
        answer = self._call("iam", "CreateAccessKey", signer, region, {"UserName": user})
        key = answer.get("AccessKey") or {}
        if not key.get("AccessKeyId") or not key.get("SecretAccessKey"):
            raise IamError(f"IAM CreateAccessKey for {user}: no key in the answer")
        created = key.get("CreateDate")
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        return NewKey(
            str(key["AccessKeyId"]),
            str(key["SecretAccessKey"]),
            created if isinstance(created, datetime) else None,
        )

    def deactivate_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        params = {"UserName": user, "AccessKeyId": key_id, "Status": "Inactive"}
        self._call("iam", "UpdateAccessKey", signer, region, params)

    def delete_key(self, signer: Credentials, region: str, user: str, key_id: str) -> None:
        self._call(
            "iam", "DeleteAccessKey", signer, region, {"UserName": user, "AccessKeyId": key_id}
        )

    def _call(
        self, service: str, operation: str, creds: Credentials, region: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        secrets = [s for s in (creds.secret_access_key, creds.session_token) if s]
        what = f"{service.upper()} {operation}"
        if "AccessKeyId" in params:
            what += f" of {mask_key_id(params['AccessKeyId'])}"
        error: IamError
        try:
            client = self._aws.create(
                service,
                region_name=region,
                aws_access_key_id=creds.access_key_id,
                aws_secret_access_key=creds.secret_access_key,
                aws_session_token=creds.session_token,
                config=self._config,
            )
            method: Callable[..., dict[str, Any]] = getattr(client, _snake(operation))
            return method(**params)
        except ClientError as exc:
            error = _client_error(exc, what, creds, secrets)
        except (HTTPClientError, BotoConnectionError) as exc:
            error = IamTransientError(
                f"{what} failed (temporary): {type(exc).__name__}: {_scrub(str(exc), secrets)}"
            )
        except BotoCoreError as exc:
            error = IamError(f"{what} failed: {type(exc).__name__}: {_scrub(str(exc), secrets)}")
        raise error


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _client_error(exc: ClientError, what: str, creds: Credentials, secrets: list[str]) -> IamError:
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    err = response.get("Error") or {}
    code = str(err.get("Code") or "Unknown")
    message = _scrub(str(err.get("Message") or "no message"), secrets)
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    said = f"{what} with key {mask_key_id(creds.access_key_id)} refused: {code}: {message}"
    if code in TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429)):
        return IamTransientError(f"{said} (temporary)")
    if code == "NoSuchEntity":
        return NoSuchKeyError(said)
    return IamError(said)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "****")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_AWS_MESSAGE else text[: _MAX_AWS_MESSAGE - 3] + "..."
