"""The rotation journal: what a key rotation has done so far, so a cut-off one is finished.

One small JSON file, `$XDG_STATE_HOME/credd/rotation.json` (else
`~/.local/state/credd/rotation.json`), mode 0600, rewritten whole through the one
atomic writer (`credd.files.atomic`). It holds key ids, user names and times,
never a secret:

- `open`: per profile, the rotation under way (SPEC.md's steps): the IAM user,
  where the key lives (`keyring` or `file`), the old key id, the key ids IAM
  listed before (so a key created and never recorded is recognised), the new
  key id once CreateAccessKey answered, and the last step done;
- `keys`: per profile, what IAM said of the key credd holds when it last looked
  (id, CreateDate, when it looked), and why the last rotation could not be made
  (two keys present), so `credd keys list` shows age and next rotation without
  calling IAM.

A lock file beside it (`rotation.lock`, `flock`) makes a daemon's rotation and a
foreground `credd keys rotate` or `credd keys list` take turns.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from credd.credentials import format_utc, mask_key_id, parse_utc
from credd.errors import CreddError
from credd.files.atomic import atomic_write

_VERSION = 1
STEPS = ("intent", "created", "stored", "verified", "deactivated", "deleted")


def journal_path(env: Mapping[str, str]) -> Path:
    """`$XDG_STATE_HOME/credd/rotation.json`, else `~/.local/state/credd/rotation.json`."""
    state = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return Path(state) / "credd" / "rotation.json"


@dataclass(frozen=True)
class OpenRotation:
    """A rotation under way for one profile (key ids only)."""

    profile: str
    user: str
    where: str  # keyring or file
    old_key_id: str
    before: tuple[str, ...]  # the key ids IAM listed when the intent was recorded
    started_at: str
    step: str = "intent"
    new_key_id: str | None = None

    def __repr__(self) -> str:
        new = mask_key_id(self.new_key_id) if self.new_key_id else None
        return f"OpenRotation({self.profile}, {mask_key_id(self.old_key_id)} -> {new}, {self.step})"


@dataclass(frozen=True)
class KeyRecord:
    """What IAM said of a profile's key when credd last looked."""

    key_id: str
    created_at: str | None = None
    checked_at: str | None = None
    blocked: str | None = None  # why the last rotation was not made
    rotated_at: str | None = None

    def __repr__(self) -> str:
        return f"KeyRecord({mask_key_id(self.key_id)}, created_at={self.created_at})"

    def created(self) -> datetime | None:
        """CreateDate, parsed."""
        return parse_utc(self.created_at) if self.created_at else None


@dataclass
class JournalData:
    """The whole file."""

    open: dict[str, OpenRotation] = field(default_factory=dict)
    keys: dict[str, KeyRecord] = field(default_factory=dict)


class Journal:
    """The journal at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"Journal({self.path})"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the journal's lock (blocking) for one rotation or recovery."""
        self._make_dir()
        fd = os.open(
            self.path.with_name("rotation.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
        )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def read(self) -> JournalData:
        """The journal's content; an absent file is an empty journal."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return JournalData()
        except OSError as error:
            raise CreddError(f"cannot read {self.path}: {error.strerror}") from None
        try:
            raw = json.loads(text)
            data = JournalData(
                open={
                    name: OpenRotation(**{**entry, "before": tuple(entry.get("before", ()))})
                    for name, entry in (raw.get("open") or {}).items()
                },
                keys={name: KeyRecord(**entry) for name, entry in (raw.get("keys") or {}).items()},
            )
        except (ValueError, TypeError, AttributeError):
            raise CreddError(
                f"{self.path} is not a rotation journal credd wrote; move it aside"
            ) from None
        return data

    def write(self, data: JournalData) -> None:
        """Replace the journal, atomically, 0600."""
        self._make_dir()
        raw: dict[str, Any] = {
            "version": _VERSION,
            "open": {name: asdict(entry) for name, entry in sorted(data.open.items())},
            "keys": {name: asdict(record) for name, record in sorted(data.keys.items())},
        }
        atomic_write(self.path, (json.dumps(raw, indent=2) + "\n").encode(), mode=0o600)

    def open_entry(self, profile: str) -> OpenRotation | None:
        """The rotation under way for `profile`, if any."""
        return self.read().open.get(profile)

    def begin(self, entry: OpenRotation) -> None:
        """Record a rotation's intent."""
        data = self.read()
        data.open[entry.profile] = entry
        self.write(data)

    def advance(self, profile: str, step: str, **changes: Any) -> OpenRotation:
        """Record that `step` is done (with the new key id, once known)."""
        data = self.read()
        entry = replace(data.open[profile], step=step, **changes)
        data.open[profile] = entry
        self.write(data)
        return entry

    def close(self, profile: str, record: KeyRecord | None = None) -> None:
        """Close the rotation of `profile`, keeping what is now known of its key."""
        data = self.read()
        data.open.pop(profile, None)
        if record is not None:
            data.keys[profile] = record
        self.write(data)

    def remember(self, profile: str, record: KeyRecord) -> None:
        """Keep what IAM said of `profile`'s key."""
        data = self.read()
        data.keys[profile] = record
        self.write(data)

    def record(self, profile: str) -> KeyRecord | None:
        """What credd last learnt of `profile`'s key."""
        return self.read().keys.get(profile)

    def _make_dir(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def stamp(when: datetime) -> str:
    """A time as the journal writes it."""
    return format_utc(when.replace(microsecond=0))
