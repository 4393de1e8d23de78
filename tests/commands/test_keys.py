"""`credd keys ...` and `credctl import --csv` (credd/commands/keys.py), as a person runs
them: the real commands, a real Secret Service (GNOME Keyring on a private bus), the file
read back by botocore. Canary secrets never show in any output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import botocore.session
import pytest
from support.secret_service import SecretService

from credd.adapters.keyring import Keyring, StoredKey
from credd.commands.keys import move_into_keyring
from credd.errors import BadInputError
from credd.files.writer import CredentialsWriter

BIN = Path(sys.executable).parent
KEY_ID = "AKIAIMPORTTEST00WXYZ"
SECRET = "canary-long-term-secret-7Hq2"
OTHER_ID = "AKIAOTHERKEY0000ABCD"
OTHER_SECRET = "canary-other-secret-Zk1"
CANARIES = (SECRET, OTHER_SECRET)

FILE = (
    "# my keys\r\n"
    "[default]\r\n"
    "region = eu-west-1\r\n"
    f"aws_access_key_id = {KEY_ID}\r\n"
    "; a comment inside\r\n"
    f"aws_secret_access_key={SECRET}\r\n"
    "output = json\r\n"
    "\r\n"
    "[other]\r\n"
    "aws_access_key_id = AKIASTAYSINFILE0001\r\n"
    "aws_secret_access_key = stays-here\r\n"
)
AFTER_IMPORT = (
    "# my keys\r\n"
    "[default]\r\n"
    "region = eu-west-1\r\n"
    "; a comment inside\r\n"
    "output = json\r\n"
    "\r\n"
    "[other]\r\n"
    "aws_access_key_id = AKIASTAYSINFILE0001\r\n"
    "aws_secret_access_key = stays-here\r\n"
)


@pytest.fixture
def home(tmp_path: Path, secret_service_env: SecretService) -> Path:
    aws = tmp_path / ".aws"
    aws.mkdir(mode=0o700)
    (aws / "credentials").write_bytes(FILE.encode())
    (aws / "credentials").chmod(0o600)
    return tmp_path


def env_for(home: Path, service: SecretService, **extra: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        **service.env,
        **extra,
    }


def run(
    home: Path, service: SecretService, *argv: str, stdin: str = "", **extra: str
) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / argv[0]), *argv[1:]]
    result = subprocess.run(
        command,
        env=env_for(home, service, **extra),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for canary in CANARIES:
        assert canary not in result.stdout + result.stderr, argv
    return result


def credentials(home: Path) -> Path:
    return home / ".aws" / "credentials"


def botocore_view(home: Path, profile: str) -> Mapping[str, str]:
    session = botocore.session.Session(
        profile=profile,
        session_vars={
            "credentials_file": (None, None, str(credentials(home)), None),
            "config_file": (None, None, str(home / ".aws" / "config"), None),
        },
    )
    return session.get_scoped_config()  # type: ignore[no-any-return]


def stored(profile: str) -> StoredKey | None:
    return Keyring().get(profile)


def test_import_moves_the_keys_and_keeps_every_other_byte(
    home: Path, secret_service_env: SecretService
) -> None:
    """The keyring holds the keys; the file loses exactly its two key lines; botocore reads
    the profile with no secret left; nothing secret is printed."""
    result = run(home, secret_service_env, "credd", "keys", "import", "default")
    assert result.returncode == 0, result.stderr
    assert "moved the keys of default (****WXYZ) into the keyring" in result.stdout
    assert credentials(home).read_bytes() == AFTER_IMPORT.encode()
    assert credentials(home).stat().st_mode & 0o777 == 0o600
    view = botocore_view(home, "default")
    assert view["region"] == "eu-west-1"
    assert "aws_secret_access_key" not in view and "aws_access_key_id" not in view
    assert SECRET.encode() not in credentials(home).read_bytes()
    held = stored("default")
    assert held is not None and (held.access_key_id, held.secret_access_key) == (KEY_ID, SECRET)


def test_import_with_the_keyring_locked_changes_nothing(
    home: Path, secret_service_env: SecretService
) -> None:
    """A locked keyring: exit 1 with the reason, and the file keeps its keys."""
    secret_service_env.lock()
    result = run(home, secret_service_env, "credd", "keys", "import", "default")
    assert result.returncode == 1
    assert result.stderr.startswith("credd: error: cannot read credd/default in the keyring")
    assert "locked" in result.stderr
    assert credentials(home).read_bytes() == FILE.encode()


def test_import_refuses_what_it_cannot_move(home: Path, secret_service_env: SecretService) -> None:
    """No keys in the file, or another key already in the keyring: exit 2, nothing changed."""
    result = run(home, secret_service_env, "credd", "keys", "import", "nobody")
    assert result.returncode == 2
    assert "profile nobody has no long-term keys" in result.stderr
    Keyring().put("default", OTHER_ID, OTHER_SECRET)
    result = run(home, secret_service_env, "credd", "keys", "import", "default")
    assert result.returncode == 2
    assert "the keyring already holds key ****ABCD for default" in result.stderr
    assert credentials(home).read_bytes() == FILE.encode()
    held = stored("default")
    assert held is not None and held.access_key_id == OTHER_ID


class _RacingKeyring(Keyring):
    """Stores, and meanwhile another program changes the profile's keys in the file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def put(self, profile: str, access_key_id: str, secret_access_key: str) -> StoredKey:
        result = super().put(profile, access_key_id, secret_access_key)
        self.path.write_bytes(FILE.replace(KEY_ID, OTHER_ID).encode())
        return result


def test_import_never_removes_keys_that_changed_meanwhile(
    home: Path, secret_service_env: SecretService
) -> None:
    """The key lines go only while they are still the keys the keyring holds."""
    path = credentials(home)
    with pytest.raises(BadInputError, match="changed while they were being moved"):
        move_into_keyring("default", CredentialsWriter(path), _RacingKeyring(path))
    assert path.read_bytes() == FILE.replace(KEY_ID, OTHER_ID).encode()


def test_add_list_export_remove(home: Path, secret_service_env: SecretService) -> None:
    """Keys typed in (stdin), listed masked, exported back to the file, removed."""
    result = run(
        home, secret_service_env, "credd", "keys", "add", "alice", stdin=f"{KEY_ID}\n{SECRET}\n"
    )
    assert result.returncode == 0, result.stderr
    assert "stored the keys of alice (****WXYZ) in the keyring" in result.stdout

    listed = run(home, secret_service_env, "credd", "keys", "list", "--json")
    rows = {(r["profile"], r["where"]): r for r in json.loads(listed.stdout)["keys"]}
    assert rows[("alice", "keyring")]["key_id"] == "****WXYZ"
    assert rows[("alice", "keyring")]["stored_at"] is not None
    assert rows[("default", "file")]["key_id"] == "****WXYZ"
    assert KEY_ID not in listed.stdout
    table = run(home, secret_service_env, "credd", "keys", "list").stdout
    assert "alice" in table and "keyring" in table and KEY_ID not in table

    result = run(home, secret_service_env, "credd", "keys", "export", "alice")
    assert result.returncode == 0, result.stderr
    assert stored("alice") is None
    view = botocore_view(home, "alice")
    assert (view["aws_access_key_id"], view["aws_secret_access_key"]) == (KEY_ID, SECRET)
    assert FILE.encode() in credentials(home).read_bytes()

    Keyring().put("bob", OTHER_ID, OTHER_SECRET)
    result = run(home, secret_service_env, "credd", "keys", "remove", "bob")
    assert result.returncode == 0 and "deleted the keys of bob (****ABCD)" in result.stdout
    assert stored("bob") is None
    result = run(home, secret_service_env, "credd", "keys", "remove", "bob")
    assert result.returncode == 2 and "holds no keys for bob" in result.stderr


def test_add_from_the_consoles_csv_never_touches_the_disk(
    home: Path, secret_service_env: SecretService
) -> None:
    """`--csv`: into the keyring only; the credentials file is not changed."""
    csv = home / "alice_accessKeys.csv"
    csv.write_text(f"Access key ID,Secret access key\n{OTHER_ID},{OTHER_SECRET}\n")
    result = run(home, secret_service_env, "credd", "keys", "add", "work", "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    held = stored("work")
    assert held is not None and held.secret_access_key == OTHER_SECRET
    assert credentials(home).read_bytes() == FILE.encode()
    result = run(
        home, secret_service_env, "credd", "keys", "add", "work", stdin=f"{KEY_ID}\n{SECRET}\n"
    )
    assert result.returncode == 2 and "already holds key ****ABCD for work" in result.stderr


POLICY = """\
version: 1
profiles:
  session-dev:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/dev
"""


def test_credctl_import_never_replaces_keys_without_force(
    home: Path, secret_service_env: SecretService
) -> None:
    """Existing keys: exit 2 naming the profile and the masked key id; --force replaces;
    --profile chooses; a profile the policy manages is refused even with --force."""
    csv = home / "new_accessKeys.csv"
    csv.write_text(f"\ufeffaccess key id,SECRET ACCESS KEY\n{OTHER_ID},{OTHER_SECRET}\n")
    result = run(
        home, secret_service_env, "credctl", "import", "--csv", str(csv), "--profile", "default"
    )
    assert result.returncode == 2
    assert result.stderr == (
        f"credctl: error: profile default already holds key ****WXYZ in {credentials(home)};"
        " pass --force to replace it\n"
    )
    assert credentials(home).read_bytes() == FILE.encode()

    result = run(home, secret_service_env, "credctl", "import", "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    assert botocore_view(home, "new")["aws_access_key_id"] == OTHER_ID

    result = run(
        home,
        secret_service_env,
        "credctl",
        "import",
        "--csv",
        str(csv),
        "--profile",
        "default",
        "--force",
    )
    assert result.returncode == 0, result.stderr
    assert botocore_view(home, "default")["aws_access_key_id"] == OTHER_ID
    assert botocore_view(home, "default")["region"] == "eu-west-1"

    policy = home / ".config" / "credd" / "policy.yaml"
    policy.parent.mkdir(parents=True, mode=0o700)
    policy.write_text(POLICY)
    policy.chmod(0o600)
    before = credentials(home).read_bytes()
    for extra in ([], ["--force"], ["--keyring", "--force"]):
        result = run(
            home,
            secret_service_env,
            "credctl",
            "import",
            "--csv",
            str(csv),
            "--profile",
            "session-dev",
            *extra,
        )
        assert result.returncode == 2, extra
        assert "session-dev is managed by the policy" in result.stderr
    assert credentials(home).read_bytes() == before
    assert stored("session-dev") is None


def test_credctl_import_into_the_keyring(home: Path, secret_service_env: SecretService) -> None:
    """`--keyring`: the keys go to the keyring; with --force over plaintext keys, those leave
    the file (they would be shadowed and stay on disk)."""
    csv = home / "credentials.csv"
    csv.write_text(
        "User name,Password,Access key ID,Secret access key,Console login link\n"
        f"carol,,{OTHER_ID},{OTHER_SECRET},https://example.invalid\n"
    )
    result = run(home, secret_service_env, "credctl", "import", "--csv", str(csv), "--keyring")
    assert result.returncode == 0, result.stderr
    assert "imported 1 profile(s) into the keyring" in result.stdout
    held = stored("carol")
    assert held is not None and held.secret_access_key == OTHER_SECRET
    assert credentials(home).read_bytes() == FILE.encode()

    result = run(
        home,
        secret_service_env,
        "credctl",
        "import",
        "--csv",
        str(csv),
        "--keyring",
        "--profile",
        "default",
    )
    assert result.returncode == 2 and "default already holds key ****WXYZ" in result.stderr
    result = run(
        home,
        secret_service_env,
        "credctl",
        "import",
        "--csv",
        str(csv),
        "--keyring",
        "--profile",
        "default",
        "--force",
    )
    assert result.returncode == 0, result.stderr
    assert credentials(home).read_bytes() == AFTER_IMPORT.encode()
    held = stored("default")
    assert held is not None and held.access_key_id == OTHER_ID
