"""moto's IAM for the rotation tests: an IAM user with one access key, and authentication
switched on and off.

moto's server accepts any key until told otherwise: `enforced()` makes it check
every request's signature against the access keys IAM holds (and their policies),
through `/moto-api/reset-auth`, and switches it off again after. A rotation runs
with enforcement off (moto refuses GetSessionToken credentials for IAM calls,
SPEC.md's known traps); enforcement on shows that the old key is refused and the
new one works. The server is the test module's own: enforcement is global.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.session
from botocore.exceptions import ClientError

_ALLOW_ALL = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
)


def client(url: str, service: str, key_id: str = "admin", secret: str = "admin") -> Any:
    """A botocore client for `service` on moto, signing with the given key."""
    return botocore.session.Session().create_client(
        service,
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


@dataclass(frozen=True)
class IamUser:
    """An IAM user on moto and the access key it started with."""

    url: str
    name: str
    key_id: str
    secret: str

    def access_keys(self) -> list[dict[str, Any]]:
        """ListAccessKeys, asked as the administrator (enforcement off)."""
        answer = client(self.url, "iam").list_access_keys(UserName=self.name)
        return list(answer["AccessKeyMetadata"])

    def add_key(self) -> str:
        """A second access key made behind credd's back; its id."""
        made = client(self.url, "iam").create_access_key(UserName=self.name)
        return str(made["AccessKey"]["AccessKeyId"])


def make_user(url: str) -> IamUser:
    """A fresh IAM user allowed everything, with one access key."""
    name = f"alice-{secrets.token_hex(4)}"
    iam = client(url, "iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=_ALLOW_ALL)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return IamUser(url, name, key["AccessKeyId"], key["SecretAccessKey"])


def _reset_auth(url: str, count: str) -> None:
    request = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()


@contextmanager
def enforced(url: str) -> Iterator[None]:
    """moto checks every request's key and signature while this lasts."""
    _reset_auth(url, "0")
    try:
        yield
    finally:
        _reset_auth(url, "inf")


def works(url: str, key_id: str, secret: str, user: str) -> str:
    """With enforcement on: `ok` when the key may list its user's keys, else AWS's code."""
    try:
        client(url, "iam", key_id, secret).list_access_keys(UserName=user)
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"
