"""`credd keys ...` and `credctl import --csv`: long-term keys into and out of the keyring.

SPEC.md "Long-term keys" and the `credd keys` commands:

- `import PROFILE [--file F]` moves a profile's keys from the credentials file
  into the keyring: stored, read back and compared, and only then the two key
  lines removed from the file, through the safe writer, while the file still
  holds those very keys (every other byte kept: region, comments, other keys);
- `add PROFILE [--csv FILE]` stores keys straight into the keyring, typed on the
  terminal (the secret not echoed) or from the console's CSV; never on disk;
- `list [--json]` every long-term key credd can use: profile, masked key id,
  where it lives, when it was stored; never a secret;
- `export PROFILE [--file F]` the way back: into the file (0600), read back and
  compared, and only then out of the keyring;
- `remove PROFILE` deletes the keyring item (asks first on a terminal);
- `rotate PROFILE [--token-code CODE]` rotates the key now, in the foreground
  (credd.rotation): IAM is called with the MFA session a running credd holds for
  that source (asked for over its socket, as `credctl credential-process` does),
  else with a session made here from a code, else (no MFA device known) with the
  key itself. `list` and `rotate` first finish or undo a rotation cut off before.

`credctl import --csv FILE [--profile P] [--force] [--keyring] [--file F]` is
here too (credctl loads this module for that command only): keys already held
for a profile, in the file or the keyring, are never replaced without
`--force` (exit 2, naming the profile and the masked key id there), and a
profile the policy manages is always refused (credd writes sessions there).

Exit 0 done; 1 the keyring or the file failed; 2 bad input (nothing changed).
"""

from __future__ import annotations

import getpass
import json
import re
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from credd import paths
from credd.adapters.keyring import Keyring, StoredKey
from credd.credentials import format_utc, mask_key_id
from credd.errors import BadInputError, CreddError, KeyringError, PolicyError
from credd.files import csvimport
from credd.files.writer import CredentialsWriter
from credd.timetext import format_long, format_relative

EXIT_OK = 0
_KEY_ID = "aws_access_key_id"
_SECRET = "aws_secret_access_key"
_TOKENS = ("aws_session_token", "aws_security_token")
_KEY_ID_FORMAT = re.compile(r"[A-Z0-9]{16,128}")


def credentials_file(file: str | None, env: Mapping[str, str]) -> Path:
    """`--file`, else `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`."""
    return Path(file) if file else Path(paths.credentials_path(env))


def managed_profiles(env: Mapping[str, str]) -> frozenset[str]:
    """The profiles the policy names (credd writes sessions there), read leniently.

    A policy with errors still names its profiles: they are refused all the same.
    """
    from credd.policy.load import parse_yaml, read_policy

    path = Path(paths.policy_path(env))
    if not path.exists():
        return frozenset()
    try:
        document, _ = parse_yaml(read_policy(path))
    except PolicyError:
        return frozenset()
    profiles = document.get("profiles") if isinstance(document, dict) else None
    return frozenset(str(name) for name in profiles) if isinstance(profiles, dict) else frozenset()


def file_keys(section: Mapping[str, str] | None) -> tuple[str, str] | None:
    """A section's long-term key id and secret (no session token beside them), or None."""
    if not section:
        return None
    key_id, secret = section.get(_KEY_ID), section.get(_SECRET)
    if not (key_id and secret) or any(section.get(t) for t in _TOKENS):
        return None
    return key_id, secret


def move_into_keyring(
    profile: str, writer: CredentialsWriter, keyring: Keyring, *, replace: bool = False
) -> StoredKey:
    """Move `profile`'s keys from the file into the keyring (`credd keys import`).

    The keyring must hold them, read back equal, before the file loses them; the file
    loses only its two key lines, and only while they are still the keys stored.
    A keyring that already holds another key for the profile is left alone unless
    `replace`.
    """
    found = file_keys(writer.read().get(profile))
    if found is None:
        raise BadInputError(
            f"profile {profile} has no long-term keys (aws_access_key_id and"
            f" aws_secret_access_key, no session token) in {writer.path}"
        )
    key_id, secret = found
    held = keyring.get(profile)
    if held is not None and held.access_key_id != key_id and not replace:
        raise BadInputError(
            f"the keyring already holds key {mask_key_id(held.access_key_id)} for {profile};"
            f" remove it first (`credd keys remove {profile}`) or export it"
        )
    stored = keyring.put(profile, key_id, secret)

    def still_the_same(sections: Mapping[str, Mapping[str, str]]) -> bool:
        if file_keys(sections.get(profile)) != (stored.access_key_id, stored.secret_access_key):
            raise BadInputError(
                f"{writer.path}: the keys of {profile} changed while they were being moved;"
                f" the keyring holds {mask_key_id(stored.access_key_id)}, the file was left"
                " as it is: run the command again"
            )
        return False  # still ours to remove

    writer.update({profile: {_KEY_ID: None, _SECRET: None}}, check=still_the_same)
    return stored


def plaintext_profiles(writer: CredentialsWriter, names: list[str]) -> list[str]:
    """Those of `names` whose long-term keys sit in the file (what `credd init` offers to
    move)."""
    try:
        sections = writer.read()
    except CreddError:
        return []
    return [name for name in names if file_keys(sections.get(name)) is not None]


class _Keys:
    """One `credd keys` command."""

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        keyring: Keyring,
        stdin: TextIO,
        out: TextIO,
        now: Callable[[], datetime],
        err: TextIO = sys.stderr,
    ) -> None:
        self.err = err
        self.env = env
        self.keyring = keyring
        self.stdin = stdin
        self.out = out
        self.now = now

    def import_(self, profile: str, file: str | None) -> int:
        path = credentials_file(file, self.env)
        _check_name(profile)
        stored = move_into_keyring(profile, CredentialsWriter(path), self.keyring)
        self.out.write(
            f"moved the keys of {profile} ({mask_key_id(stored.access_key_id)}) into the"
            f" keyring ({self.keyring.describe()}) and out of {path}\n"
        )
        return EXIT_OK

    def add(self, profile: str, csv: str | None, force: bool) -> int:
        _check_name(profile)
        if profile in managed_profiles(self.env):
            raise BadInputError(f"{profile} is managed by the policy: credd writes sessions there")
        if csv is not None:
            (row,) = csvimport.read_rows(Path(csv), profile)
            key_id, secret = row.access_key_id, row.secret_access_key
        else:
            key_id, secret = self._typed()
        held = self.keyring.get(profile)
        if held is not None and held.access_key_id != key_id and not force:
            raise BadInputError(
                f"the keyring already holds key {mask_key_id(held.access_key_id)} for"
                f" {profile}; pass --force to replace it"
            )
        stored = self.keyring.put(profile, key_id, secret)
        self.out.write(
            f"stored the keys of {profile} ({mask_key_id(stored.access_key_id)}) in the"
            f" keyring ({self.keyring.describe()})\n"
        )
        return EXIT_OK

    def _typed(self) -> tuple[str, str]:
        tty = _isatty(self.stdin)
        if tty:
            self.out.write("AWS Access Key ID: ")
            self.out.flush()
        key_id = self.stdin.readline().strip()
        secret = (
            getpass.getpass("AWS Secret Access Key: ") if tty else self.stdin.readline()
        ).strip()
        if not _KEY_ID_FORMAT.fullmatch(key_id):
            raise BadInputError("that does not look like an access key id (AKIA...)")
        if not secret or any(c.isspace() for c in secret):
            raise BadInputError("the secret access key is empty or contains whitespace")
        return key_id, secret

    def list_keys(self, as_json: bool, file: str | None) -> int:
        rows = self.rows(file)
        if as_json:
            self.out.write(json.dumps({"keys": rows}, indent=2) + "\n")
            return EXIT_OK
        if not rows:
            self.out.write("no long-term keys found (keyring or credentials file)\n")
            return EXIT_OK
        table = [("PROFILE", "KEY", "WHERE", "STORED", "AGE", "NEXT ROTATION")]
        now = self.now()
        for row in rows:
            stored = row["stored_at"]
            stored_ago = (
                f"{format_relative((now - _parse(stored)).total_seconds())} ago" if stored else "-"
            )
            created = row.get("created_at")
            age = format_long((now - _parse(created)).total_seconds()) if created else "-"
            nxt = row.get("next_rotation")
            if nxt:
                left = (_parse(nxt) - now).total_seconds()
                nxt = f"in {format_long(left)}" if left > 0 else "due"
            elif row.get("rotate_every") is None:
                nxt = "off"
            if row.get("rotation"):
                nxt = f"{nxt or '-'} ({row['rotation']})"
            where = row["where"] + (f" ({row['error']})" if row.get("error") else "")
            table.append((row["profile"], row["key_id"] or "-", where, stored_ago, age, nxt or "-"))
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for line in table:
            self.out.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
            self.out.write("\n")
        return EXIT_OK

    def rows(self, file: str | None) -> list[dict[str, Any]]:
        """Each key credd can use: keyring items first, then the file's plaintext keys, each
        with its age and next rotation as the rotation journal knows them."""
        rows = self._rows(file)
        notes = self._recover_all(file)
        from credd.rotation.rotate import due_at

        journal = self._rotator(file).journal.read()
        every = self._rotate_every()
        for row in rows:
            name = row["profile"]
            record = journal.keys.get(name)
            held = row.get("key_id")
            if record is not None and held is not None and mask_key_id(record.key_id) != held:
                record = None  # learnt of a key the profile no longer holds
            due = due_at(record, every.get(name))
            row["created_at"] = record.created_at if record else None
            row["rotate_every"] = every.get(name)
            row["next_rotation"] = format_utc(due) if due is not None else None
            row["rotation"] = notes.get(name) or (record.blocked if record else None)
        return rows

    def _rows(self, file: str | None) -> list[dict[str, Any]]:
        path = credentials_file(file, self.env)
        try:
            sections = CredentialsWriter(path).read()
        except CreddError:
            sections = {}
        listed = self.keyring.profiles()
        rows: list[dict[str, Any]] = []
        in_keyring: set[str] = set()
        candidates = sorted(listed) if listed is not None else sorted(sections)
        for profile in candidates:
            row: dict[str, Any] = {
                "profile": profile,
                "where": "keyring",
                "key_id": None,
                "stored_at": None,
                "next_rotation": None,
                "error": None,
            }
            try:
                stored = self.keyring.get(profile)
            except KeyringError as error:
                if listed is None:
                    break  # no listing and no reading: the keyring says nothing
                row["error"] = _short(error.message)
            else:
                if stored is None:
                    continue
                row["key_id"] = mask_key_id(stored.access_key_id)
                row["stored_at"] = format_utc(stored.stored_at) if stored.stored_at else None
            in_keyring.add(profile)
            rows.append(row)
        for profile in sorted(sections):
            found = file_keys(sections[profile])
            if found is None:
                continue
            rows.append(
                {
                    "profile": profile,
                    "where": "file" if profile not in in_keyring else "file (unused)",
                    "key_id": mask_key_id(found[0]),
                    "stored_at": None,
                    "next_rotation": None,
                    "error": None,
                }
            )
        return rows

    # ------------------------------------------------------------------ rotation

    def _rotator(self, file: str | None) -> Any:
        from credd.adapters.iam import Boto3Iam
        from credd.rotation.journal import Journal, journal_path
        from credd.rotation.rotate import Rotator

        return Rotator(
            iam=Boto3Iam(),
            journal=Journal(journal_path(self.env)),
            credentials_file=credentials_file(file, self.env),
            keyring=self.keyring,
            clock=self.now,
            env=self.env,
        )

    def _policy(self) -> Any:
        """The policy in force, or None (rotation works without one)."""
        from credd.policy import load_policy

        path = Path(paths.policy_path(self.env))
        if not path.exists():
            return None
        try:
            return load_policy(path, self.env, in_keyring=self.keyring.holds)
        except CreddError:
            return None

    def _rotate_every(self) -> dict[str, int]:
        policy = self._policy()
        every: dict[str, int] = {}
        for profile in policy.profiles if policy is not None else ():
            if profile.rotate_every is not None and not profile.source_is_managed:
                name = profile.source_profile
                every[name] = min(every.get(name, profile.rotate_every), profile.rotate_every)
        return every

    def _region(self, profile: str, policy: Any) -> str:
        for candidate in policy.profiles if policy is not None else ():
            if candidate.source_profile == profile and not candidate.source_is_managed:
                return str(candidate.region)
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.env.get(name):
                return self.env[name]
        return "us-east-1"

    def _recover_all(self, file: str | None) -> dict[str, str]:
        """Finish or undo every rotation cut off before; a line for each that could not be."""
        rotator = self._rotator(file)
        policy = self._policy()
        notes: dict[str, str] = {}
        for name in rotator.open_profiles():
            try:
                done = rotator.recover(name, None, self._region(name, policy))
            except CreddError as error:
                notes[name] = f"a rotation was cut off, and finishing it failed: {error.message}"
                continue
            if done:
                self.err.write(f"credd: {done}\n")
        return notes

    def rotate(self, profile: str, token_code: str | None, file: str | None) -> int:
        _check_name(profile)
        rotator = self._rotator(file)
        policy = self._policy()
        region = self._region(profile, policy)
        keys, _ = rotator.held(profile)
        session = self._daemon_session(profile, policy)
        if session is None:
            serial = self._serial(profile, policy)
            if serial is not None:
                code = token_code if token_code is not None else self._ask_code(serial)
                from credd.adapters.sts import Boto3Sts
                from credd.protocol import validate_code

                session = Boto3Sts().get_session_token(
                    source=keys,
                    region=region,
                    serial=serial,
                    code=validate_code(code),
                    duration=900,
                )
        rotated = rotator.rotate(profile, session, region)
        self.out.write(rotated.describe() + "\n")
        return EXIT_OK

    def _daemon_session(self, profile: str, policy: Any) -> Any:
        """The MFA session a running credd holds that was made from `profile`'s key."""
        if policy is None:
            return None
        from credd.credentials import Credentials
        from credd.ctl.client import Client

        client = Client(paths.socket_path(self.env))
        for candidate in policy.profiles:
            if candidate.source_profile != profile or candidate.kind.value != "mfa-session":
                continue
            try:
                held = client.request("credential-process", profile=candidate.name)
            except CreddError:
                continue
            if held.get("SessionToken"):
                return Credentials(
                    held["AccessKeyId"], held["SecretAccessKey"], held["SessionToken"]
                )
        return None

    def _serial(self, profile: str, policy: Any) -> str | None:
        for candidate in policy.profiles if policy is not None else ():
            if candidate.source_profile == profile and candidate.mfa_serial:
                return str(candidate.mfa_serial)
        from credd.files.lookup import AwsFiles

        try:
            aws = AwsFiles.load(credentials_file(None, self.env), self.env)
        except CreddError:
            return None
        return aws.mfa_serial_for(profile)

    def _ask_code(self, serial: str) -> str:
        if _isatty(self.stdin):
            self.out.write(f"MFA code for {serial}: ")
            self.out.flush()
        line = self.stdin.readline()
        if not line:
            raise BadInputError(f"no MFA code given for {serial} (use --token-code)")
        return line.strip()

    def export(self, profile: str, file: str | None) -> int:
        _check_name(profile)
        path = credentials_file(file, self.env)
        writer = CredentialsWriter(path)
        stored = self.keyring.get(profile)
        if stored is None:
            raise BadInputError(f"the keyring holds no keys for {profile}")
        present = writer.read().get(profile) or {}
        if present.get(_KEY_ID) and present.get(_KEY_ID) != stored.access_key_id:
            raise BadInputError(
                f"{path} already holds key {mask_key_id(present[_KEY_ID])} for {profile};"
                " nothing was changed"
            )
        writer.update(
            {
                profile: {
                    _KEY_ID: stored.access_key_id,
                    _SECRET: stored.secret_access_key,
                    "aws_session_token": None,
                    "aws_security_token": None,
                    "x_security_token_expires": None,
                }
            }
        )
        back = file_keys(writer.read().get(profile))
        if back != (stored.access_key_id, stored.secret_access_key):
            raise CreddError(
                f"{path} did not read back the keys of {profile}; the keyring still holds them"
            )
        self.keyring.delete(profile)
        self.out.write(
            f"wrote the keys of {profile} ({mask_key_id(stored.access_key_id)}) to {path}"
            " and removed them from the keyring\n"
        )
        return EXIT_OK

    def remove(self, profile: str, yes: bool) -> int:
        _check_name(profile)
        stored = self.keyring.get(profile)
        if stored is None:
            raise BadInputError(f"the keyring holds no keys for {profile}")
        if not yes and _isatty(self.stdin):
            self.out.write(
                f"Delete the keys of {profile} ({mask_key_id(stored.access_key_id)}) from the"
                " keyring? They are not kept anywhere else by credd. [y/N] "
            )
            self.out.flush()
            if self.stdin.readline().strip().lower() not in ("y", "yes"):
                self.out.write("nothing was deleted\n")
                return EXIT_OK
        self.keyring.delete(profile)
        self.out.write(
            f"deleted the keys of {profile} ({mask_key_id(stored.access_key_id)}) from the"
            " keyring\n"
        )
        return EXIT_OK


def run_keys(
    action: str,
    args: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    keyring: Keyring | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """One `credd keys` command; the exit status (module doc)."""
    if args.get("policy"):
        env = {**env, "CREDD_POLICY": args["policy"]}
    if args.get("socket"):
        env = {**env, "CREDD_SOCKET": args["socket"]}
    keys = _Keys(env=env, keyring=keyring or Keyring(), stdin=stdin, out=out, now=now, err=err)
    try:
        if action == "import":
            return keys.import_(args["profile"], args["file"])
        if action == "add":
            return keys.add(args["profile"], args["csv"], args["force"])
        if action == "list":
            return keys.list_keys(args["json"], args["file"])
        if action == "rotate":
            return keys.rotate(args["profile"], args["token_code"], args["file"])
        if action == "export":
            return keys.export(args["profile"], args["file"])
        return keys.remove(args["profile"], args["yes"])
    except CreddError as error:
        err.write(f"credd: error: {' '.join(error.message.split())}\n")
        return error.exit_status


def run_import_csv(
    csv_path: str,
    *,
    profile: str | None,
    force: bool,
    to_keyring: bool,
    file: str | None,
    env: Mapping[str, str],
    out: TextIO,
    keyring: Keyring | None = None,
) -> int:
    """`credctl import --csv`: raises CreddError (credctl prints it) or returns 0."""
    if profile is not None:
        _check_name(profile)
    path = credentials_file(file, env)
    writer = CredentialsWriter(path)
    rows = csvimport.read_rows(Path(csv_path), profile)
    managed = sorted(managed_profiles(env) & {row.profile for row in rows})
    if managed:
        raise BadInputError(
            f"{', '.join(managed)} is managed by the policy ({paths.policy_path(env)}): credd"
            " writes sessions there; import into another profile with --profile"
        )
    sections = writer.read()
    store = (keyring or Keyring()) if to_keyring else None
    for row in rows:
        existing = (sections.get(row.profile) or {}).get(_KEY_ID)
        where = str(path)
        if store is not None and not existing:
            held = store.get(row.profile)
            existing, where = (held.access_key_id, "the keyring") if held else (None, where)
        if existing and existing != row.access_key_id and not force:
            raise BadInputError(
                f"profile {row.profile} already holds key {mask_key_id(existing)} in {where};"
                " pass --force to replace it"
            )
    names = [row.profile for row in rows]
    if store is None:
        writer.update({row.profile: csvimport.file_keys(row) for row in rows})
        out.write(f"imported {len(names)} profile(s) into {path}: {', '.join(names)}\n")
        return EXIT_OK
    for row in rows:
        store.put(row.profile, row.access_key_id, row.secret_access_key)
    # Plaintext keys of those profiles would be shadowed, and stay on disk: they go.
    stale = [row.profile for row in rows if (sections.get(row.profile) or {}).get(_KEY_ID)]
    if stale:
        writer.update({name: {_KEY_ID: None, _SECRET: None} for name in stale})
    out.write(
        f"imported {len(names)} profile(s) into the keyring ({store.describe()}):"
        f" {', '.join(names)}\n"
    )
    return EXIT_OK


def _check_name(profile: str) -> None:
    from credd.policy import section_name_problem

    problem = section_name_problem(profile)
    if problem is not None or profile == "DEFAULT":
        raise BadInputError(f"not a usable profile name: {problem or 'DEFAULT is reserved'}")


def _short(message: str) -> str:
    return message.split(": ", 1)[-1].split(";", 1)[0]


def _parse(text: str) -> datetime:
    from credd.credentials import parse_utc

    return parse_utc(text)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
