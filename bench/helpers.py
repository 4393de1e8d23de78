"""Child programs the benchmark times as whole processes: `python bench/helpers.py MODE ...`.

Each prints one JSON object on stdout with what it measured inside itself, so
the report can show the in-process figure beside the whole-process one.

- `sts-roundtrip N`: N GetSessionToken calls on one warm boto3 client.
- `serial-loop SESSIONS ROLES`: the plain boto3 loop that #4 compares credd with.
- `writer-update FILE SECTION`: one section updated through credd's safe writer.
- `configparser-read FILE`: the same file read with configparser.
- `endpoint-fetch N`: N fetches from the credentials endpoint that `credctl exec` gives
  this process, by botocore's own container provider (one client, kept alive).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

KEY_ID = "AKIAEXAMPLEBENCH0001"
SECRET = "benchLongTermSecret000000000000000000000"
ACCOUNT = "123456789012"


def _sts(key: str, secret: str, token: str | None = None) -> object:
    import boto3

    return boto3.client(
        "sts",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


def sts_roundtrip(count: int) -> dict[str, object]:
    """Time `count` GetSessionToken round trips on one client (the first one separately)."""
    client = _sts(KEY_ID, SECRET)
    times = []
    for index in range(count + 1):
        start = time.perf_counter()
        client.get_session_token(  # type: ignore[attr-defined]
            SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/bench0",
            TokenCode=f"{index % 1_000_000:06d}",
            DurationSeconds=43200,
        )
        times.append(time.perf_counter() - start)
    return {"first": times[0], "warm": times[1:]}


def serial_loop(sessions: int, roles: int) -> dict[str, object]:
    """What a plain script does for the same profiles: one call after another.

    Per session: GetSessionToken on the long-term keys, then a client on the
    session and its roles' AssumeRole calls, in order. Clients are created the
    way a plain script would (one per set of credentials), inside the timing.
    """
    import boto3  # noqa: F401  (imported before the clock starts, as credd's is)

    start = time.perf_counter()
    cpu_start = time.process_time()
    long_term = _sts(KEY_ID, SECRET)
    calls = 0
    for s in range(sessions):
        answer = long_term.get_session_token(  # type: ignore[attr-defined]
            SerialNumber=f"arn:aws:iam::{ACCOUNT}:mfa/bench{s}",
            TokenCode=f"{s:06d}",
            DurationSeconds=43200,
        )
        calls += 1
        creds = answer["Credentials"]
        session = _sts(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])
        for r in range(roles):
            session.assume_role(  # type: ignore[attr-defined]
                RoleArn=f"arn:aws:iam::{ACCOUNT}:role/bench-{s}-{r}",
                RoleSessionName=f"credd-role-{s}-{r}",
                DurationSeconds=3600,
            )
            calls += 1
    return {
        "seconds": time.perf_counter() - start,
        "cpu": time.process_time() - cpu_start,
        "calls": calls,
    }


def writer_update(path: Path, section: str) -> dict[str, object]:
    """One section's keys replaced through credd's safe writer (lock, re-read, fsync, rename)."""
    from credd.files.writer import CredentialsWriter

    stamp = f"{time.time_ns():020d}"
    start = time.perf_counter()
    CredentialsWriter(path).update(
        {
            section: {
                "aws_access_key_id": "ASIABENCH" + stamp[-11:],
                "aws_secret_access_key": "s" * 30 + stamp[-10:],
                "aws_session_token": "t" * 300 + stamp,
                "aws_security_token": None,
                "x_security_token_expires": "2030-01-01T00:00:00Z",
            }
        }
    )
    return {"seconds": time.perf_counter() - start}


def configparser_read(path: Path) -> dict[str, object]:
    """The file read and parsed by configparser, as botocore-era tools do."""
    import configparser

    start = time.perf_counter()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    sections = len(parser.sections())
    return {"seconds": time.perf_counter() - start, "sections": sections}


def endpoint_fetch(count: int) -> dict[str, object]:
    """Time `count` credential fetches by botocore's ContainerProvider (the first apart).

    The provider is the one an SDK uses under `credctl exec`: it reads the endpoint's URL
    and token from the environment and keeps its HTTP connection alive between fetches.
    """
    from botocore.credentials import ContainerProvider

    provider = ContainerProvider()
    times = []
    for _ in range(count + 1):
        start = time.perf_counter()
        credentials = provider.load()
        frozen = credentials.get_frozen_credentials() if credentials else None
        times.append(time.perf_counter() - start)
        if frozen is None or not frozen.token:
            raise SystemExit("the endpoint gave no session credentials")
    return {"first": times[0], "warm": times[1:]}


def main(argv: list[str]) -> int:
    """Dispatch on the mode; print the JSON result."""
    mode, *args = argv
    if mode == "sts-roundtrip":
        result = sts_roundtrip(int(args[0]))
    elif mode == "serial-loop":
        result = serial_loop(int(args[0]), int(args[1]))
    elif mode == "writer-update":
        result = writer_update(Path(args[0]), args[1])
    elif mode == "configparser-read":
        result = configparser_read(Path(args[0]))
    elif mode == "endpoint-fetch":
        result = endpoint_fetch(int(args[0]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
