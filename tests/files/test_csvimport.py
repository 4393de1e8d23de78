"""credd.files.csvimport: `credctl import --csv`, the console's access-key CSV into the file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from credd.errors import BadInputError
from credd.files.csvimport import import_csv
from credd.files.writer import CredentialsWriter

CANARY = "CANARYSECRET/abc+def"
KEY_A = "AKIAAAAAAAAAAAAAAAAA"
KEY_B = "AKIABBBBBBBBBBBBBBBB"
EXISTING = "# mine\n[keep]\nregion = eu-west-1\n"


@pytest.fixture
def creds(tmp_path: Path) -> Path:
    """A credentials file with a section that an import must leave alone."""
    path = tmp_path / "credentials"
    path.write_text(EXISTING)
    return path


def write_csv(tmp_path: Path, text: str, name: str = "credentials.csv") -> Path:
    """The CSV file as the console would download it (bytes as given, no newline translation)."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_console_user_csv_with_bom_extra_columns_and_crlf(tmp_path: Path, creds: Path) -> None:
    """The IAM wizard's CSV: BOM, CRLF, Password and link columns ignored, one profile per row."""
    csv_path = write_csv(
        tmp_path,
        "\ufeffUser name,Password,Access key ID,Secret access key,Console login link\r\n"
        f"alice,pw1,{KEY_A},{CANARY}1,https://x.signin.aws.amazon.com/console\r\n"
        f"bob,pw2,{KEY_B},{CANARY}2,https://x.signin.aws.amazon.com/console\r\n",
    )
    assert import_csv(csv_path, CredentialsWriter(creds)) == ["alice", "bob"]
    parsed = CredentialsWriter(creds).read()
    assert parsed["alice"] == {"aws_access_key_id": KEY_A, "aws_secret_access_key": f"{CANARY}1"}
    assert parsed["bob"]["aws_access_key_id"] == KEY_B
    assert creds.read_text().startswith(EXISTING)
    assert "pw1" not in creds.read_text()


def test_header_case_and_spacing_are_ignored_and_fields_may_be_quoted(
    tmp_path: Path, creds: Path
) -> None:
    """Headers match case-insensitively with spaces trimmed; quoted fields are unquoted."""
    csv_path = write_csv(
        tmp_path,
        f'" USER NAME ", "access KEY id",Secret Access Key \n"carol", "{KEY_A}"," {CANARY}=="\n',
    )
    assert import_csv(csv_path, CredentialsWriter(creds)) == ["carol"]
    assert CredentialsWriter(creds).read()["carol"]["aws_secret_access_key"] == f"{CANARY}=="


def test_import_replaces_keys_and_drops_a_stale_session(tmp_path: Path, creds: Path) -> None:
    """Importing into an existing profile replaces its keys and removes token and expiry."""
    creds.write_text(
        "[alice]\naws_access_key_id = ASIAOLD\naws_secret_access_key = OLD\n"
        "aws_session_token = OLDTOKEN\nx_security_token_expires = 2020-01-01T00:00:00Z\n"
        "region = us-east-1\n"
    )
    csv_path = write_csv(tmp_path, f"User Name,Access key ID,Secret access key\nalice,{KEY_A},S\n")
    import_csv(csv_path, CredentialsWriter(creds))
    assert CredentialsWriter(creds).read()["alice"] == {
        "aws_access_key_id": KEY_A,
        "aws_secret_access_key": "S",
        "region": "us-east-1",
    }


@pytest.mark.parametrize(
    ("file_name", "profile"),
    [("alice_accessKeys.csv", "alice"), ("keys.csv", "default")],
)
def test_single_key_csv_without_user_column_is_named_after_the_file_or_default(
    tmp_path: Path, creds: Path, file_name: str, profile: str
) -> None:
    """The access-key page's CSV has no User Name: `<user>_accessKeys.csv` names it, or default."""
    csv_path = write_csv(
        tmp_path, f"Access key ID,Secret access key\n{KEY_A},{CANARY}\n", name=file_name
    )
    assert import_csv(csv_path, CredentialsWriter(creds)) == [profile]
    assert CredentialsWriter(creds).read()[profile]["aws_access_key_id"] == KEY_A


BAD = [
    (
        "empty secret",
        f"User Name,Access key ID,Secret access key\nalice,{KEY_A},{CANARY}\nbob,{KEY_B},\n",
        "line 3: 'secret access key' is empty",
    ),
    (
        "key id that is not one",
        f"User Name,Access key ID,Secret access key\nalice,{CANARY},{CANARY}\n",
        "line 2: 'access key id' does not look like an access key id",
    ),
    (
        "lowercase key id",
        f"User Name,Access key ID,Secret access key\nalice,{KEY_A.lower()},{CANARY}\n",
        "line 2: 'access key id' does not look",
    ),
    (
        "short row",
        f"User Name,Access key ID,Secret access key\nalice,{KEY_A}\n",
        "line 2: has 2 fields",
    ),
    (
        "empty user",
        f"User Name,Access key ID,Secret access key\n,{KEY_A},{CANARY}\n",
        "line 2: 'user name' is empty",
    ),
    (
        "user that is no IAM name",
        f"User Name,Access key ID,Secret access key\nal ice,{KEY_A},{CANARY}\n",
        "line 2: 'user name' is not an IAM user name",
    ),
    (
        "user named DEFAULT",
        f"User Name,Access key ID,Secret access key\nDEFAULT,{KEY_A},{CANARY}\n",
        "cannot be named DEFAULT",
    ),
    (
        "secret with a space",
        f'User Name,Access key ID,Secret access key\nalice,{KEY_A},"{CANARY} x"\n',
        "line 2: 'secret access key' contains whitespace",
    ),
    (
        "duplicate users",
        "User Name,Access key ID,Secret access key\n"
        f"alice,{KEY_A},{CANARY}\nbob,{KEY_B},{CANARY}\nalice,{KEY_B},{CANARY}\n"
        f"bob,{KEY_A},{CANARY}\n",
        "users named more than once: alice, bob",
    ),
    (
        "missing column",
        f"User Name,Access key ID\nalice,{KEY_A}\n",
        "no 'secret access key' column",
    ),
    ("header only", "User Name,Access key ID,Secret access key\n", "no access keys"),
    ("empty file", "", "empty file"),
    (
        "two keys without user names",
        f"Access key ID,Secret access key\n{KEY_A},{CANARY}\n{KEY_B},{CANARY}\n",
        "2 access keys but no 'User name' column",
    ),
    (
        "unterminated quote",
        f'User Name,Access key ID,Secret access key\nalice,{KEY_A},"{CANARY}\n',
        "not valid CSV",
    ),
]


@pytest.mark.parametrize(
    ("text", "fragment"), [(t, f) for _, t, f in BAD], ids=[n for n, *_ in BAD]
)
def test_bad_csv_names_file_and_line_never_the_secret_and_writes_nothing(
    tmp_path: Path, creds: Path, text: str, fragment: str
) -> None:
    """Every row is checked first: one bad row, and no profile is written at all."""
    csv_path = write_csv(tmp_path, text)
    before = creds.read_bytes()
    with pytest.raises(BadInputError) as caught:
        import_csv(csv_path, CredentialsWriter(creds))
    message = str(caught.value)
    assert message.startswith(f"{csv_path}: ")
    assert fragment in message
    assert "CANARYSECRET" not in message.upper()
    assert caught.value.exit_status == 2
    assert creds.read_bytes() == before


def test_missing_csv_file_names_the_path(tmp_path: Path, creds: Path) -> None:
    """A CSV that does not exist is bad input naming its path; nothing is written."""
    missing = tmp_path / "nope.csv"
    with pytest.raises(BadInputError, match=r"nope\.csv: no such file"):
        import_csv(missing, CredentialsWriter(creds))
    assert creds.read_text() == EXISTING


def test_not_utf8_csv_is_refused(tmp_path: Path, creds: Path) -> None:
    """A CSV that is not UTF-8 (say, UTF-16 from a spreadsheet) is refused, not mis-read."""
    csv_path = tmp_path / "credentials.csv"
    csv_path.write_bytes("User Name,Access key ID,Secret access key\n".encode("utf-16"))
    with pytest.raises(BadInputError, match="not a UTF-8 CSV"):
        import_csv(csv_path, CredentialsWriter(creds))


def test_rows_are_written_in_one_update(tmp_path: Path, creds: Path) -> None:
    """All profiles go to the file in a single atomic write."""
    renames: list[Path] = []

    def counting_replace(src: Path, dst: Path) -> None:
        renames.append(dst)
        os.replace(src, dst)

    csv_path = write_csv(
        tmp_path,
        f"User Name,Access key ID,Secret access key\na,{KEY_A},S1\nb,{KEY_B},S2\nc,{KEY_A},S3\n",
    )
    names = import_csv(csv_path, CredentialsWriter(creds, replace=counting_replace))
    assert names == ["a", "b", "c"]
    assert len(renames) == 1
