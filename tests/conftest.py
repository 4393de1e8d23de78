"""Fixtures shared by credd's tests. Doubles live in `tests/support/`."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from support.fake_sts import FakeSts
from support.moto_sts import free_port, moto_sts_server
from support.secret_service import SecretService, missing_tools, secret_service

# Variables that would let an SDK call find keys, a profile or a remote host.
_AWS_LEAKS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(scope="session")
def moto_sts_url() -> Iterator[str]:
    """moto's server on 127.0.0.1 for the whole session: `http://127.0.0.1:PORT`."""
    with moto_sts_server() as url:
        yield url


@pytest.fixture
def fake_sts() -> Iterator[FakeSts]:
    """A fresh fault-injecting STS on 127.0.0.1 (see `support.fake_sts`)."""
    with FakeSts() as sts:
        yield sts


@pytest.fixture
def aws_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An AWS environment that can reach nothing but 127.0.0.1 and reads no real files.

    Keys, profiles, proxies and endpoints are cleared; the AWS config and
    credentials files point into an empty directory (returned); every
    endpoint defaults to a closed port on 127.0.0.1, so a test that forgets
    to set `AWS_ENDPOINT_URL_STS` fails fast instead of calling AWS.
    """
    for name in _AWS_LEAKS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "aws-home"
    home.mkdir()
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return home


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests on a fresh event loop (no plugin needed for so little)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture
def totp() -> pyotp.TOTP:
    """A virtual MFA device, shared by whatever feeds codes and the fake STS."""
    return pyotp.TOTP(pyotp.random_base32())


@pytest.fixture
def otp_sts(totp: pyotp.TOTP) -> Iterator[FakeSts]:
    """The fault-injecting STS, accepting the device's current (or adjacent) code, once."""
    with FakeSts(code_validator=lambda serial, code: totp.verify(code, valid_window=1)) as sts:
        yield sts


@pytest.fixture(scope="session")
def secret_service_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretService]:
    """GNOME Keyring on a D-Bus session of its own, for the whole test session."""
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: `make test` installs them (Debian packages)")
    with secret_service(tmp_path_factory.mktemp("secret-service")) as service:
        yield service


@pytest.fixture
def secret_service_env(
    secret_service_session: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    """The test's processes (this one included) reach that keyring, unlocked and empty of
    credd's items."""
    service = secret_service_session
    service.clear()
    for name, value in service.env.items():
        monkeypatch.setenv(name, value)
    yield service
    service.clear()
