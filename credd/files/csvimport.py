"""`credctl import --csv`: the AWS console's access-key CSV into the credentials file.

Standard library only: `credctl` imports it.

The console offers two downloads:

- the IAM user wizard's `credentials.csv`: `User name`, `Password`,
  `Access key ID`, `Secret access key`, `Console login link`, one row per
  user; each row becomes the profile named after its user;
- the access-key page's `<user>_accessKeys.csv`: only `Access key ID` and
  `Secret access key`, one row. It names no user, so the profile is named
  after the file when the file has the console's name (`alice_accessKeys.csv`
  becomes `[alice]`, as the other CSV would name it), and is `default`
  otherwise. Such a file must hold one row: more would all be one profile.

Headers are matched case-insensitively with surrounding space ignored; other
columns are ignored; a UTF-8 byte order mark is ignored. Every row is checked
before anything is written, and all profiles are written in one update.
Importing long-term keys into a profile also removes any session token and
expiry it held, which would otherwise pair a stale token with the new keys.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from credd.errors import BadInputError
from credd.files.credfile import DEFAULT_SECTION
from credd.files.writer import CredentialsWriter

_USER = "user name"
_KEY_ID = "access key id"
_SECRET = "secret access key"
_KEY_ID_FORMAT = re.compile(r"[A-Z0-9]{16,128}")
# IAM user names: up to 64 of letters, digits and + = , . @ _ -
_USER_NAME_FORMAT = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
_CONSOLE_FILE_NAME = re.compile(r"(?P<user>[A-Za-z0-9+=,.@_-]{1,64})_accessKeys\.csv")
DEFAULT_PROFILE = "default"


@dataclass(frozen=True, repr=False)
class KeyRow:
    """One access key of the CSV and the profile it goes to. No repr: it holds a secret."""

    profile: str
    access_key_id: str
    secret_access_key: str
    line: int


def file_keys(row: KeyRow) -> dict[str, str | None]:
    """The keys a row sets in its section: any session token and expiry go, which would
    otherwise pair a stale token with the new keys."""
    return {
        "aws_access_key_id": row.access_key_id,
        "aws_secret_access_key": row.secret_access_key,
        "aws_session_token": None,
        "aws_security_token": None,
        "x_security_token_expires": None,
    }


def import_csv(csv_path: Path, writer: CredentialsWriter, profile: str | None = None) -> list[str]:
    """Write each row of the console CSV `csv_path` as a profile; returns the profile names.

    Raises `BadInputError` naming the file and line (never a secret) for a
    missing or unreadable file, missing columns, an empty or malformed
    field, or a user named twice; nothing is written then. Errors of the
    writer (`CredentialsFileError`, `FileWriteError`) pass through.
    """
    rows = read_rows(csv_path, profile)
    writer.update({row.profile: file_keys(row) for row in rows})
    return [row.profile for row in rows]


def read_rows(csv_path: Path, profile: str | None = None) -> list[KeyRow]:
    """Every access key of the CSV, checked; `profile` (`--profile`) names the one key's
    profile, instead of the User Name column or the file's name."""
    rows = _read_rows(csv_path, profile)
    if profile is not None and len(rows) > 1:
        raise BadInputError(
            f"{csv_path}: {len(rows)} access keys, but --profile names one profile;"
            " leave --profile out to name each after its user"
        )
    return rows


def _read_rows(csv_path: Path, profile: str | None) -> list[KeyRow]:
    try:
        data = csv_path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"{csv_path}: no such file") from None
    except OSError as error:
        raise BadInputError(f"{csv_path}: cannot be read ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadInputError(f"{csv_path}: not a UTF-8 CSV file") from None

    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    try:
        records = [(reader.line_num, record) for record in reader]
    except csv.Error as error:
        # csv's messages describe the syntax ("unexpected end of data"), not the data.
        raise BadInputError(
            f"{csv_path}: line {reader.line_num}: not valid CSV ({error})"
        ) from None
    records = [(line, record) for line, record in records if any(f.strip() for f in record)]
    if not records:
        raise BadInputError(f"{csv_path}: empty file, expected the console's access-key CSV")

    header_line, header = records[0]
    columns = [name.strip().lower() for name in header]
    missing = [name for name in (_KEY_ID, _SECRET) if name not in columns]
    if missing:
        raise BadInputError(
            f"{csv_path}: line {header_line}: no {' or '.join(repr(m) for m in missing)} column;"
            " expected the console's access-key CSV"
        )
    repeated = sorted(name for name, n in Counter(columns).items() if n > 1 and name)
    if repeated:
        raise BadInputError(f"{csv_path}: line {header_line}: repeated column {repeated[0]!r}")
    index = {name: columns.index(name) for name in (_USER, _KEY_ID, _SECRET) if name in columns}

    body = records[1:]
    if not body:
        raise BadInputError(f"{csv_path}: no access keys after the header line")
    if _USER not in index and len(body) > 1:
        raise BadInputError(
            f"{csv_path}: {len(body)} access keys but no 'User name' column to name their profiles"
        )
    fallback = _profile_for_file(csv_path)
    rows = [_row(csv_path, line, record, index, fallback, chosen=profile) for line, record in body]

    counts = Counter(row.profile for row in rows)
    duplicates = [name for name, n in counts.items() if n > 1]
    if duplicates:
        raise BadInputError(f"{csv_path}: users named more than once: {', '.join(duplicates)}")
    return rows


def _row(
    path: Path,
    line: int,
    record: list[str],
    index: dict[str, int],
    fallback: str,
    *,
    chosen: str | None,
) -> KeyRow:
    where = f"{path}: line {line}"
    if len(record) <= max(index.values()):
        raise BadInputError(f"{where}: has {len(record)} fields, fewer than the header")
    fields = {name: record[i].strip() for name, i in index.items()}
    for name in index:
        if not fields[name]:
            raise BadInputError(f"{where}: {name!r} is empty")
    profile = fields.get(_USER, fallback)
    if not _USER_NAME_FORMAT.fullmatch(profile):
        raise BadInputError(f"{where}: 'user name' is not an IAM user name")
    if chosen is not None:
        profile = chosen
    if profile == DEFAULT_SECTION:
        raise BadInputError(f"{where}: a profile cannot be named {DEFAULT_SECTION}")
    if not _KEY_ID_FORMAT.fullmatch(fields[_KEY_ID]):
        # A malformed field may be a misplaced secret: it is not shown.
        raise BadInputError(f"{where}: 'access key id' does not look like an access key id")
    if any(c.isspace() for c in fields[_SECRET]):
        raise BadInputError(f"{where}: 'secret access key' contains whitespace")
    return KeyRow(profile, fields[_KEY_ID], fields[_SECRET], line)


def _profile_for_file(path: Path) -> str:
    match = _CONSOLE_FILE_NAME.fullmatch(path.name)
    return match.group("user") if match else DEFAULT_PROFILE
