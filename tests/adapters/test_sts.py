"""credd.adapters.sts: Boto3Sts against moto (happy paths) and the fault-injecting FakeSts."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from support.fake_sts import INVALID_TOKEN, MFA_FAILED, FakeSts, hang
from support.moto_sts import free_port

from credd.adapters.iam import Boto3Iam
from credd.adapters.sts import (
    AWS_LOGGERS,
    CODE_REJECTED_HINT,
    AwsClients,
    Boto3Sts,
    quiet_aws_loggers,
    read_timeout_from,
)
from credd.credentials import Credentials
from credd.errors import (
    BadInputError,
    CodeRejectedError,
    CreddError,
    StsError,
    StsTransientError,
)

REGION = "us-east-1"
SERIAL = "arn:aws:iam::123456789012:mfa/alice"
ROLE = "arn:aws:iam::210987654321:role/Admin"
KEY_ID = "AKIACANARYKEYID91234"
SECRET = "CanarySecretKeyDoNotLeakCanarySecretKey0"
CODE = "918273"
# A role's ExternalId is a shared secret of sorts (the policy never quotes it back either).
EXTERNAL_ID = "CanaryExternalId-5b7e2c91"
SOURCE = Credentials(KEY_ID, SECRET)
CANARIES = (SECRET, CODE, KEY_ID, EXTERNAL_ID)


@pytest.fixture
def fake(fake_sts: FakeSts, aws_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSts:
    """The fake STS, reached the way credd reaches any STS: AWS_ENDPOINT_URL_STS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", fake_sts.url)
    return fake_sts


@pytest.fixture
def moto(moto_sts_url: str, aws_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """moto's STS, reached through AWS_ENDPOINT_URL_STS."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_sts_url)
    return moto_sts_url


@pytest.fixture(autouse=True)
def _restore_aws_loggers() -> Iterator[None]:
    """Boto3Sts quiets the AWS loggers process-wide; put their levels back after each test."""
    names = [n for n in list(logging.Logger.manager.loggerDict) if n.split(".")[0] in AWS_LOGGERS]
    saved = {n: logging.getLogger(n).level for n in {*names, *AWS_LOGGERS}}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def sts() -> Boto3Sts:
    """A client with short timeouts, so a hang is detected quickly."""
    return Boto3Sts(connect_timeout=2, read_timeout=1)


def assert_clean(exc: BaseException, *extra: str) -> None:
    """No canary in the message, repr, args or traceback, and nothing chained."""
    text = "\n".join([str(exc), repr(exc), repr(exc.args), *traceback.format_exception(exc)])
    for canary in (*CANARIES, *extra):
        assert canary not in text
    assert exc.__cause__ is None
    assert exc.__context__ is None


def session_token(sts: Boto3Sts, *, code: str = CODE, duration: int = 3600) -> Credentials:
    return sts.get_session_token(
        source=SOURCE, region=REGION, serial=SERIAL, code=code, duration=duration
    )


def role_with_mfa(sts: Boto3Sts, *, code: str = CODE, **extra: Any) -> Credentials:
    """AssumeRole of ROLE from the long-term SOURCE keys with SERIAL and a code."""
    return sts.assume_role(
        source=SOURCE,
        region=REGION,
        role_arn=ROLE,
        session_name="credd",
        duration=3600,
        serial=SERIAL,
        code=code,
        **extra,
    )


# -- against moto -----------------------------------------------------------


def test_get_session_token_then_chained_role_against_moto(moto: str, sts: Boto3Sts) -> None:
    """GetSessionToken returns session credentials with an aware UTC expiry, and
    AssumeRole signed with that session returns role credentials."""
    before = datetime.now(UTC)
    session = session_token(sts, duration=7200)
    assert session.session_token
    assert session.access_key_id != KEY_ID
    assert session.expires_at is not None
    assert session.expires_at.tzinfo is UTC
    assert session.expires_at > before + timedelta(seconds=3600)

    role = sts.assume_role(
        source=session, region=REGION, role_arn=ROLE, session_name="credd", duration=900
    )
    assert role.session_token
    assert role.access_key_id not in (session.access_key_id, KEY_ID)
    assert role.expires_at is not None
    assert role.expires_at.tzinfo is UTC


def test_endpoint_url_sts_is_honoured(
    moto_sts_url: str, aws_sandbox: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore itself routes STS calls to AWS_ENDPOINT_URL_STS; without it the
    generic AWS_ENDPOINT_URL (a closed port here) is used and the failure is transient."""
    with pytest.raises(StsTransientError, match="EndpointConnectionError") as info:
        session_token(Boto3Sts())
    assert_clean(info.value)

    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_sts_url)
    assert session_token(Boto3Sts()).session_token


# -- against the fake: success and what is sent ----------------------------


def test_sends_the_source_keys_not_environment_or_file_keys(
    fake: FakeSts, aws_sandbox: Path, monkeypatch: pytest.MonkeyPatch, sts: Boto3Sts
) -> None:
    """Only the source keys given sign the request: keys in the environment or
    in the credentials file are never picked up."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENTKEY00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "environment-secret")
    (aws_sandbox / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAFILEKEY000000000\naws_secret_access_key = x\n"
    )
    fake.expected_code = CODE
    creds = session_token(sts, duration=5400)

    (call,) = fake.calls
    assert (call.action, call.access_key_id, call.region) == ("GetSessionToken", KEY_ID, REGION)
    assert (call.serial, call.code, call.duration, call.outcome) == (SERIAL, CODE, 5400, "ok")
    assert creds.access_key_id.startswith("ASIA")
    assert creds.access_key_id in fake.issued_keys()


def test_assume_role_chained_on_a_session(fake: FakeSts, sts: Boto3Sts) -> None:
    """A role chained on an MFA session is signed with the session's key and token."""
    session = session_token(sts)
    role = sts.assume_role(
        source=session,
        region=REGION,
        role_arn=ROLE,
        session_name="credd-prod",
        duration=3600,
        external_id="ext-1",
    )
    call = fake.calls_for("AssumeRole")[0]
    assert call.access_key_id == session.access_key_id
    assert (call.role_arn, call.session_name, call.external_id) == (ROLE, "credd-prod", "ext-1")
    assert (call.duration, call.code_sent, call.outcome) == (3600, False, "ok")
    assert role.expires_at is not None and role.expires_at.tzinfo is UTC


def test_role_chaining_over_one_hour_is_refused(fake: FakeSts, sts: Boto3Sts) -> None:
    """STS caps a role assumed from a session at 1 h; the refusal is a plain StsError."""
    session = session_token(sts)
    with pytest.raises(StsError, match=r"ValidationError.*role chaining") as info:
        sts.assume_role(
            source=session, region=REGION, role_arn=ROLE, session_name="credd", duration=7200
        )
    assert_clean(info.value, session.secret_access_key, str(session.session_token))


# -- refused codes ------------------------------------------------------------


def test_wrong_code_is_code_rejected_with_aws_message_and_hint(
    fake: FakeSts, sts: Boto3Sts
) -> None:
    """A code STS does not accept is CodeRejectedError, quoting AWS and saying what to do."""
    fake.expected_code = "111111"
    with pytest.raises(CodeRejectedError) as info:
        session_token(sts)
    message = str(info.value)
    assert "AccessDenied" in message
    assert MFA_FAILED in message
    assert CODE_REJECTED_HINT in message
    assert SERIAL in message
    assert_clean(info.value)


def test_reused_code_is_code_rejected(fake: FakeSts, sts: Boto3Sts) -> None:
    """A code accepted once is refused the second time, as AWS does."""
    session_token(sts)
    with pytest.raises(CodeRejectedError, match="already used") as info:
        session_token(sts)
    assert_clean(info.value)
    assert [c.outcome for c in fake.calls] == ["ok", "AccessDenied"]


def test_assume_role_with_mfa_rejected_code(fake: FakeSts, sts: Boto3Sts) -> None:
    """AssumeRole from long-term keys with a refused code is CodeRejectedError too."""
    fake.fail_next("AssumeRole", "reject_code")
    with pytest.raises(CodeRejectedError, match="MultiFactorAuthentication") as info:
        role_with_mfa(sts)
    assert_clean(info.value)
    assert fake.calls[0].code == CODE


# -- every fault --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        pytest.param(
            "reject_code",
            CodeRejectedError,
            ["AccessDenied", MFA_FAILED, CODE_REJECTED_HINT],
            id="reject_code",
        ),
        pytest.param("throttle", StsTransientError, ["Throttling", "Rate exceeded"], id="throttle"),
        pytest.param("http500", StsTransientError, ["InternalFailure"], id="http500"),
        pytest.param(
            "invalid_client",
            StsError,
            ["InvalidClientTokenId", INVALID_TOKEN, "****1234"],
            id="invalid_client",
        ),
        pytest.param(
            "drop_connection", StsTransientError, ["ConnectionClosedError"], id="drop_connection"
        ),
        pytest.param(
            "access_denied",
            StsError,
            ["AccessDenied", "not authorized to perform"],
            id="access_denied",
        ),
        pytest.param(
            "validation_error",
            StsError,
            ["ValidationError", "Value '****' at 'tokenCode'"],
            id="validation_error",
        ),
        pytest.param(hang(30), StsTransientError, ["ReadTimeoutError"], id="hang"),
    ],
)
def test_fault_maps_to_error(
    fake: FakeSts, sts: Boto3Sts, fault: Any, error: type[CreddError], words: list[str]
) -> None:
    """Each failure of STS is the right credd error, names AWS's code and text,
    and holds no secret, code or full key id anywhere."""
    fake.fail_next("GetSessionToken", fault)
    with pytest.raises(CreddError) as info:
        session_token(sts)
    assert type(info.value) is error
    for word in words:
        assert word in str(info.value)
    assert_clean(info.value)


def test_aws_quoting_the_external_id_back_is_scrubbed(fake: FakeSts, sts: Boto3Sts) -> None:
    """A ValidationError quotes the value AWS refuses ("Value '...' at 'externalId'"):
    the error keeps AWS's text with the ExternalId sent masked, as the code would be."""
    fake.fail_next("AssumeRole", "validation_error")
    with pytest.raises(
        StsError, match=r"ValidationError: .*Value '\*\*\*\*' at 'externalId'"
    ) as info:
        role_with_mfa(sts, external_id=EXTERNAL_ID)
    assert fake.calls[0].external_id == EXTERNAL_ID
    assert_clean(info.value)


def test_access_denied_without_a_code_is_sts_error(fake: FakeSts, sts: Boto3Sts) -> None:
    """AccessDenied on a call that sent no code is about permissions, not a code."""
    fake.fail_next("AssumeRole", "access_denied")
    with pytest.raises(
        StsError, match=f"not authorized to perform: sts:AssumeRole on resource: {ROLE}"
    ):
        sts.assume_role(
            source=SOURCE, region=REGION, role_arn=ROLE, session_name="credd", duration=900
        )


def test_get_session_token_with_session_credentials_is_sts_error(
    fake: FakeSts, sts: Boto3Sts
) -> None:
    """STS's AccessDenied for GetSessionToken signed by a session is not about the
    code: it is a plain StsError, so nobody is asked for code after code."""
    session = session_token(sts)
    with pytest.raises(StsError, match="with session credentials") as info:
        sts.get_session_token(
            source=session, region=REGION, serial=SERIAL, code="135790", duration=3600
        )
    assert type(info.value) is StsError
    assert_clean(info.value, "135790", session.secret_access_key, str(session.session_token))


def test_unknown_long_term_key_is_sts_error(fake: FakeSts, sts: Boto3Sts) -> None:
    """Long-term keys AWS does not know are a permanent StsError with AWS's message."""
    fake.valid_keys = {"AKIASOMEONEELSE00000"}
    with pytest.raises(StsError, match=r"InvalidClientTokenId.*access key id") as info:
        session_token(sts)
    assert_clean(info.value)


def test_expired_source_session_is_sts_error(fake: FakeSts, sts: Boto3Sts) -> None:
    """A role renewal signed with an expired session says so and what to do."""
    session = session_token(sts, duration=900)
    fake.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(StsError, match=r"ExpiredToken.*renew it first") as info:
        sts.assume_role(
            source=session, region=REGION, role_arn=ROLE, session_name="credd", duration=900
        )
    assert_clean(info.value, session.secret_access_key, str(session.session_token))


def test_nothing_listening_is_transient(aws_sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused connection is worth retrying."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StsTransientError, match="EndpointConnectionError") as info:
        session_token(Boto3Sts(connect_timeout=1))
    assert_clean(info.value)


def test_one_request_per_call_no_botocore_retry(fake: FakeSts, sts: Boto3Sts) -> None:
    """botocore's retries are off: a throttled call is one request, so a code is
    never sent twice behind credd's back."""
    fake.fail_next("GetSessionToken", "throttle", times=3)
    with pytest.raises(StsTransientError):
        session_token(sts)
    assert len(fake.calls) == 1


# -- the client cache and threads -------------------------------------------------


class CountingSession:
    """A real botocore session that counts the clients it creates."""

    def __init__(self) -> None:
        self.session = botocore.session.Session()
        self.created = 0

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        self.created += 1
        return self.session.create_client(*args, **kwargs)


def test_clients_are_cached_per_region_and_keys_with_a_bound(fake: FakeSts) -> None:
    """One client per (region, keys) is reused; the least recently used goes first."""
    counting = CountingSession()
    sts = Boto3Sts(aws=AwsClients(counting), max_clients=2)

    def role(source: Credentials, region: str = REGION) -> None:
        sts.assume_role(
            source=source, region=region, role_arn=ROLE, session_name="credd", duration=900
        )

    role(SOURCE)
    role(SOURCE)
    assert counting.created == 1
    role(SOURCE, "eu-west-1")
    assert counting.created == 2
    other = Credentials("AKIAOTHERKEY00000000", "other-secret")
    role(other)  # evicts the least recently used: (us-east-1, SOURCE)
    assert counting.created == 3
    role(other)
    role(SOURCE, "eu-west-1")
    assert counting.created == 3
    role(SOURCE)
    assert counting.created == 4
    assert {c.region for c in fake.calls} == {REGION, "eu-west-1"}


def test_concurrent_calls_share_one_client(fake: FakeSts) -> None:
    """Calls from a thread pool all succeed and build the client once."""
    counting = CountingSession()
    sts = Boto3Sts(aws=AwsClients(counting))
    codes = [f"{n:06d}" for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda c: session_token(sts, code=c), codes))
    assert len({r.access_key_id for r in results}) == len(codes)
    assert counting.created == 1
    assert sorted(c.code or "" for c in fake.calls) == codes


# -- logging ------------------------------------------------------------------------


def _logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "\n".join(r.getMessage() for r in caplog.records)


def test_debug_root_logger_logs_no_secret_or_code(
    fake: FakeSts, caplog: pytest.LogCaptureFixture
) -> None:
    """With the root logger at DEBUG and the AWS loggers quieted, a GetSessionToken and
    an AssumeRole log neither the source secret, the code, the ExternalId, nor the new
    secrets and token."""
    caplog.set_level(logging.DEBUG)
    quiet_aws_loggers()
    sts = Boto3Sts()
    creds = session_token(sts)
    role_code = "246802"  # a code is used once: not CODE again
    role = role_with_mfa(sts, code=role_code, external_id=EXTERNAL_ID)
    text = _logged_text(caplog)
    issued = (creds.secret_access_key, str(creds.session_token), role.secret_access_key)
    for canary in (SECRET, CODE, role_code, EXTERNAL_ID, *issued):
        assert canary not in text


def test_without_quieting_botocore_debug_would_leak(
    fake: FakeSts, caplog: pytest.LogCaptureFixture
) -> None:
    """The trap the test above guards against is real: botocore at DEBUG logs the code."""
    caplog.set_level(logging.DEBUG)
    sts = Boto3Sts()
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    session_token(sts)
    assert CODE in _logged_text(caplog)


def test_quiet_aws_loggers_raises_children_set_below_info() -> None:
    """A child logger someone set to DEBUG is raised too; a NOTSET one inherits INFO."""
    logging.getLogger("botocore.endpoint").setLevel(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    quiet_aws_loggers()
    assert logging.getLogger("botocore").level == logging.INFO
    assert logging.getLogger("botocore.endpoint").level == logging.INFO
    assert logging.getLogger("botocore.parsers").getEffectiveLevel() >= logging.INFO
    assert logging.getLogger("urllib3").level == logging.WARNING


def test_the_read_timeout_setting() -> None:
    assert read_timeout_from({}) == 15.0
    assert read_timeout_from({"CREDD_STS_READ_TIMEOUT": " 2.5 "}) == 2.5
    assert read_timeout_from({"CREDD_STS_READ_TIMEOUT": "300"}) == 300.0


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "301", "fifteen", "15s"])
def test_a_bad_read_timeout_is_refused_with_the_range(value: str) -> None:
    with pytest.raises(BadInputError) as caught:
        read_timeout_from({"CREDD_STS_READ_TIMEOUT": value})
    assert caught.value.exit_status == 2
    assert caught.value.message == (
        f"CREDD_STS_READ_TIMEOUT={value!r} is not a number of seconds above 0 and at most 300"
        " (how long one STS call may take; default 15)"
    )


def test_sts_and_iam_clients_come_from_one_session_made_one_at_a_time() -> None:
    """The daemon's IAM adapter takes the STS adapter's AwsClients: one botocore session
    (a second loads botocore's endpoint data and models again), whose client creation is
    not thread-safe, so AwsClients makes one client at a time, from any thread."""
    inside = 0
    most = 0
    made: list[str] = []
    guard = threading.Lock()

    class _Session:
        def create_client(self, service: str, **settings: Any) -> str:
            nonlocal inside, most
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.002)
            with guard:
                inside -= 1
                made.append(service)
            return service

    sts = Boto3Sts(aws=AwsClients(_Session()))
    iam = Boto3Iam(aws=sts.aws)
    assert iam._aws is sts.aws
    threads = [
        threading.Thread(target=sts.aws.create, args=("sts" if i % 2 else "iam",))
        for i in range(16)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == ["iam"] * 8 + ["sts"] * 8
    assert most == 1
