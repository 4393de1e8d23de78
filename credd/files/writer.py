"""The safe writer of the credentials file: the filesystem edge around `credfile`.

Standard library only: `credctl import` uses it.

Every update (SPEC.md "The credentials file"):

1. resolves symlinks, so the link stays a link and its target is written
   (a dangling link gets its target created);
2. creates a missing parent directory 0700;
3. takes an advisory lock (`flock`) on `.<name>.credd.lock` beside the
   target; the lock file is never removed, because removing it would let two
   writers lock two different files;
4. sweeps temp files left by crashed writes (their pid is dead, or they
   are more than a minute old);
5. reads the file and applies the change (`credfile.apply`; a file that
   cannot be parsed is never rewritten). A file another program modified
   less than 0.2 s ago is first left to settle: the AWS CLI truncates it and
   then writes it, and a change applied to it in between would drop every
   other section;
6. writes `.<name>.credd-tmp-<pid>-<random>` in the same directory, mode
   0600, and fsyncs it;
7. checks that nobody changed the file since step 5 (inode, size, mtime_ns
   and a hash of its bytes): the AWS CLI rewrites it in place with no lock.
   If it changed, the temp file is dropped and the update starts again from
   step 5, a few times at most;
8. renames the temp file over the target and fsyncs the directory.

A file that belongs to another user, or has more than one hard link, is
never replaced (`FileWriteError`): the rename would hand another user's file
to us, or split the link and leave old secrets under the other names.

The result is always mode 0600. On any OS error the temp file is removed,
the original is left byte-identical and `FileWriteError` names the path and
the error, never the content.

The check in step 7 narrows, but cannot close, the window in which a writer
that takes no lock can lose a change: one that opened the file before the
rename writes into the file the rename has just replaced. So credd keeps the
replaced file open for a moment, and once it has been left alone for 0.2 s,
carries the keys another program set in it over into the live file (at the
next update, or at `carry_over`, which the daemon calls a moment after each
write).
Keys credd itself writes are not carried (a writer that read the file before
a renewal would bring back old credentials), and neither are removals (a
half-written file must never delete anything).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from credd.errors import CreddError, CredentialsFileError, FileWriteError
from credd.files import credfile
from credd.files.atomic import (
    errno_text,
    fsync_directory,
    make_directories,
    remove,
    temp_path,
    temp_prefix,
    write_new,
)

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
# A temp file older than this is a crashed write's even if its pid was reused.
STALE_TEMP_SECONDS = 60.0
# How often an update starts again when another program keeps changing the file.
MAX_ATTEMPTS = 5
LOCK_TIMEOUT_SECONDS = 10.0
_LOCK_POLL_SECONDS = 0.02
# A file another program modified less than this long ago may be half written (the AWS
# CLI truncates, then writes): credd waits for it to settle before basing a write on it,
# and reads a replaced file for a late write only once it has settled.
SETTLE_SECONDS = 0.2
# The longest an update waits for another program's write to settle.
MAX_SETTLE_WAIT_SECONDS = 2.0
# How long a replaced file is kept open for such writes (a writer that opened it before
# the rename writes within milliseconds), and how many are kept at most.
WATCH_SECONDS = 0.5
MAX_WATCHED = 16

# Asked of the file as read under the lock, just before a write: true, nothing to write
# after all; whatever it raises stops the write with nothing written.
Check = Callable[[Mapping[str, Mapping[str, str]]], bool]


def lock_path(target: Path) -> Path:
    """The lock file beside `target`: `.<name>.credd.lock`."""
    return target.with_name(f".{target.name}.credd.lock")


def _no_sections() -> Mapping[str, frozenset[str]]:
    return MappingProxyType({})


@dataclass(frozen=True)
class FileHealth:
    """What `CredentialsWriter.inspect` found: a problem with its fix, or each section's keys.

    `keys` holds the names of each section's keys, never a value.
    """

    path: Path
    problem: str | None = None
    keys: Mapping[str, frozenset[str]] = field(default_factory=_no_sections)

    def has_keys(self, section: str) -> bool:
        """The section holds an access key id and a secret access key."""
        names = self.keys.get(section, frozenset())
        return "aws_access_key_id" in names and "aws_secret_access_key" in names


@dataclass(eq=False)
class _Replaced:
    """A file credd replaced, kept open: a writer that opened it first may still write it."""

    fd: int
    # What it held when it was replaced, or when its changes were last carried: file bytes,
    # secrets among them, so out of the repr (CONVENTIONS 15), as in _Seen and _Snapshot.
    data: bytes = field(repr=False)
    # Its size and mtime_ns when last read, settled: while they stay, it need not be read
    # again (a later write, however small, is stamped with a later mtime).
    stamp: tuple[int, int] | None
    replaced_at: float  # the writer's monotonic clock


@dataclass(frozen=True)
class _Seen:
    """A replaced file as last looked at: the file, its bytes, and its size and mtime_ns."""

    replaced: _Replaced
    data: bytes = field(repr=False)
    stamp: tuple[int, int]


@dataclass(frozen=True)
class _Snapshot:
    """What the file was when it was read: its identity and its bytes."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str
    data: bytes = field(repr=False)

    @property
    def identity(self) -> tuple[int, int, int, int]:
        """Device, inode, size and mtime: what `signature` and the last write compare."""
        return (self.device, self.inode, self.size, self.mtime_ns)


class CredentialsWriter:
    """Reads and atomically updates one credentials file.

    Safe across threads (a lock around each update) and across processes
    (`flock` on a sibling lock file). The OS calls that tests need to fail or
    race are keyword arguments with production defaults: `write`, `fsync`,
    `replace`, and `before_replace`, called with the target path after the
    temp file is written and just before the check for a concurrent change;
    `settle_seconds` is how long a replaced file must be left alone before a
    late write into it is carried over. Its clocks and its sleep (the settle and
    lock waits) are arguments too: `monotonic`, `wall_ns` (compared with file
    modification times) and `sleep`.
    """

    def __init__(
        self,
        path: Path,
        *,
        write: Callable[[int, bytes], int] = os.write,
        fsync: Callable[[int], None] = os.fsync,
        replace: Callable[[Path, Path], None] = os.replace,
        before_replace: Callable[[Path], None] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
        settle_seconds: float = SETTLE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self._monotonic = monotonic
        self._wall_ns = wall_ns
        self._sleep = sleep
        self._write = write
        self._fsync = fsync
        self._replace = replace
        self._before_replace = before_replace
        self._max_attempts = max_attempts
        self._lock_timeout = lock_timeout
        self._settle_ns = int(settle_seconds * 1e9)
        self._thread_lock = threading.Lock()
        self._replaced: list[_Replaced] = []
        # The file as credd last renamed it into place: its own writes need no settling.
        self._last_written: tuple[int, int, int, int] | None = None
        # (section, key) pairs credd has set: never carried over from a replaced file.
        self._ours: set[tuple[str, str]] = set()

    def read(self) -> dict[str, dict[str, str]]:
        """The parsed file (section -> key -> value); empty when the file does not exist.

        A file another program is rewriting is read once it has settled (see step 5).

        Raises `CredentialsFileError` when it cannot be read or parsed.
        """
        snapshot = self._settled_snapshot(self._target())
        if snapshot is None:
            return {}
        return credfile.parse(self._decode(snapshot.data), path=str(self.path))

    def signature(self) -> tuple[int, ...] | None:
        """The file's identity now (device, inode, size, mtime_ns, ctime_ns), or None.

        None when it is absent. Cheap enough for every heartbeat: the daemon re-reads the
        file only when it changed. The ctime changes with a chmod, a chown or a new hard
        link too, so fixing what `inspect` found is noticed as well.
        """
        try:
            info = os.stat(self._target())
        except (OSError, CreddError):
            return None
        return (*_identity(info), info.st_ctime_ns)

    def inspect(self) -> FileHealth:
        """Whether credd can use the file as it stands, looked at before any code is asked for.

        SPEC.md "The AWS files, before a code is spent": readable, owned by the user, not
        hard-linked, parseable as botocore parses it. Never raises: what is wrong is in
        `FileHealth.problem`, with the fix. A file that does not exist is fine (it is
        created at the first write) and has no sections.
        """
        return self.inspect_and_read()[0]

    def inspect_and_read(self) -> tuple[FileHealth, dict[str, dict[str, str]]]:
        """`inspect`, and the sections read on the way (none when there is a problem).

        The daemon starts with both; one parse of a 1,000-profile file is 20 ms of its
        start (docs/performance.md, #6).
        """
        try:
            target = self._target()
            info = os.stat(target)
        except FileNotFoundError:
            return FileHealth(self.path), {}
        except CreddError as error:
            return FileHealth(self.path, error.message), {}
        except OSError as error:
            where = f"{self.path}: cannot be looked at ({errno_text(error)})"
            return FileHealth(self.path, where), {}
        if not stat.S_ISREG(info.st_mode):
            kind = (
                f"{self.path}: is not a regular file; move it away, or set credentials_file"
                " in the policy"
            )
            return FileHealth(self.path, kind), {}
        problem = replace_problem(self.path, info)
        if problem is None:
            try:
                os.close(os.open(target, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as error:
                problem = (
                    f"{self.path}: cannot be read ({errno_text(error)}); make it readable"
                    f" by you alone: `chmod 600 {self.path}`"
                )
        if problem is not None:
            return FileHealth(self.path, problem), {}
        try:
            sections = self.read()
        except CreddError as error:
            return FileHealth(self.path, error.message), {}
        keys = {name: frozenset(values) for name, values in sections.items()}
        return FileHealth(self.path, keys=MappingProxyType(keys)), sections

    def update(
        self,
        updates: Mapping[str, Mapping[str, str | None]],
        *,
        check: Check | None = None,
    ) -> None:
        """Set (or, with None, remove) keys of any number of sections in one atomic write.

        `check`, if given, is called with the parsed file as it is read under the lock, just
        before the change is applied; true, there is nothing to write after all, and
        whatever it raises stops the update with nothing written (`credd keys import`
        removes keys only while they are still the ones it stored elsewhere).

        Raises `CredentialsFileError` when the file cannot be parsed (it is
        left as it is) and `FileWriteError` when it cannot be written.
        """
        with self._thread_lock:
            target = self._target()
            self._make_dir(target.parent)
            with self._flock(target):
                self._sweep(target)
                self._ours.update((name, key) for name, keys in updates.items() for key in keys)
                late, seen = self._late_writes()
                self._write_all(target, _merged(late, updates), check)
                self._checked(seen)

    def add_sections(
        self,
        sections: Mapping[str, Mapping[str, str]],
        *,
        present: Callable[[Collection[str]], Collection[str]],
    ) -> list[str]:
        """Add each of `sections` with its keys unless it is among `present(the file's section
        names)`; the sections added, in one lock, one read and one rename for them all.

        The question is asked of the file as read under the lock, just before the write,
        so a section someone adds meanwhile is never changed. Used for the AWS config file,
        where `[profile x]` and `[profile "x"]` are one profile: `present` knows that.
        """
        with self._thread_lock:
            target = self._target()
            self._make_dir(target.parent)
            with self._flock(target):
                self._sweep(target)
                # Filled by `none_missing` from each read, before that read's update is applied.
                updates: dict[str, Mapping[str, str | None]] = {}

                def none_missing(found: Mapping[str, Mapping[str, str]]) -> bool:
                    there = set(present(list(found)))
                    updates.clear()
                    for name, keys in sections.items():
                        if name not in there:
                            updates[name] = dict(keys)
                    return not updates

                self._write_all(target, updates, check=none_missing)
                return list(updates)

    def close(self) -> None:
        """Let go of the replaced files still held (when the daemon moves to another file)."""
        with self._thread_lock:
            while self._replaced:
                self._unwatch(self._replaced[0])

    @property
    def watching(self) -> bool:
        """Whether replaced files are still held open for `carry_over` to look at."""
        return bool(self._replaced)

    def carry_over(self) -> list[str]:
        """Carry another program's late writes into replaced files over into the file.

        Returns the sections changed (none, nearly always). The daemon calls it a moment
        after each write, and again while `watching`; each replaced file is let go once it
        has settled and WATCH_SECONDS have passed since it was replaced.
        """
        with self._thread_lock:
            late, seen = self._late_writes()
            if late:
                target = self._target()
                with self._flock(target):
                    self._write_all(target, late)
                log.warning(
                    "%s: carried over what another program wrote while credd replaced the"
                    " file (sections %s)",
                    self.path,
                    ", ".join(sorted(late)),
                )
            self._checked(seen)
            return sorted(late)

    def _late_writes(self) -> tuple[dict[str, dict[str, str]], list[_Seen]]:
        """What other programs set in replaced files since, and each settled file's bytes."""
        late: dict[str, dict[str, str]] = {}
        seen: list[_Seen] = []
        for replaced in self._replaced:
            try:
                info = os.fstat(replaced.fd)
                if self._wall_ns() - info.st_mtime_ns < self._settle_ns:
                    continue  # perhaps still being written
                stamp = (info.st_size, info.st_mtime_ns)
                data = (
                    replaced.data
                    if stamp == replaced.stamp
                    else os.pread(replaced.fd, info.st_size + 1, 0)
                )
            except OSError:
                continue
            seen.append(_Seen(replaced, data, stamp))
            if data != replaced.data:
                for name, keys in self._changes(replaced.data, data).items():
                    late.setdefault(name, {}).update(keys)
        return late, seen

    def _changes(self, before: bytes, after: bytes) -> dict[str, dict[str, str]]:
        """Keys set or changed from `before` to `after`, except credd's own; no removals."""
        try:
            old = credfile.parse(self._decode(before), path=str(self.path))
            new = credfile.parse(self._decode(after), path=str(self.path))
        except CredentialsFileError as error:
            log.warning("%s: not carried over from a replaced file: %s", self.path, error)
            return {}
        changes: dict[str, dict[str, str]] = {}
        for name, keys in new.items():
            for key, value in keys.items():
                if old.get(name, {}).get(key) != value and (name, key) not in self._ours:
                    changes.setdefault(name, {})[key] = value
        return changes

    def _checked(self, seen: list[_Seen]) -> None:
        """Once carried over: remember what each file held; close those watched long enough."""
        now = self._monotonic()
        for look in seen:
            replaced = look.replaced
            if replaced not in self._replaced:
                continue  # closed meanwhile, to make room for a newer one
            replaced.data, replaced.stamp = look.data, look.stamp
            if now - replaced.replaced_at >= WATCH_SECONDS:
                self._unwatch(replaced)

    def _watch(self, fd: int, data: bytes) -> None:
        self._replaced.append(_Replaced(fd, data, None, self._monotonic()))
        while len(self._replaced) > MAX_WATCHED:
            self._unwatch(self._replaced[0])

    def _unwatch(self, replaced: _Replaced) -> None:
        self._replaced.remove(replaced)
        os.close(replaced.fd)

    def _write_all(
        self,
        target: Path,
        updates: Mapping[str, Mapping[str, str | None]],
        check: Check | None = None,
    ) -> None:
        for _ in range(self._max_attempts):
            if self._write_once(target, updates, check):
                return
            log.info("%s changed while credd was writing it; writing again", self.path)
        raise FileWriteError(
            f"{self.path}: another program kept changing the file while credd was writing it"
            f" ({self._max_attempts} attempts); nothing was written, try again"
        )

    def sweep_stale_temp_files(self) -> list[Path]:
        """Remove temp files of crashed writes beside the file; returns what was removed."""
        with self._thread_lock:
            target = self._target()
            if not target.parent.is_dir():
                return []
            with self._flock(target):
                return self._sweep(target)

    def _settled_snapshot(self, target: Path) -> _Snapshot | None:
        """The file, once no other program has modified it for the settle time.

        Read while the AWS CLI rewrites it in place (truncate, then write), it is empty or
        cut short, and an update based on that would drop every other section.
        """
        deadline = self._monotonic() + MAX_SETTLE_WAIT_SECONDS
        while True:
            snapshot = self._snapshot(target)
            if snapshot is None or snapshot.identity == self._last_written:
                return snapshot
            left = deadline - self._monotonic()
            if left <= 0:
                return snapshot
            # Emptied since credd wrote it: almost surely truncated for a rewrite that a
            # busy machine has not let finish yet, however long ago the truncation was.
            if snapshot.size == 0 and self._last_written is not None:
                self._sleep(min(self._settle_ns / 1e9, left))
                continue
            age = self._wall_ns() - snapshot.mtime_ns
            if not 0 <= age < self._settle_ns:
                return snapshot  # settled (or stamped in the future: nothing to wait for)
            self._sleep(min((self._settle_ns - age) / 1e9, left))

    def _write_once(
        self,
        target: Path,
        updates: Mapping[str, Mapping[str, str | None]],
        check: Check | None = None,
    ) -> bool:
        """One read-apply-write round; False when the file changed under it.

        `check(the sections read)` true: nothing to write after all; what it raises stops
        the write with nothing written.
        """
        before = self._settled_snapshot(target)
        text = self._decode(before.data) if before else ""
        if check is not None and check(credfile.parse(text, path=str(self.path))):
            return True
        new_text = credfile.apply(text, updates, path=str(self.path))
        if before is not None and new_text == text:
            return True
        if before is None and not new_text:
            return True
        if before is not None:
            self._check_replaceable(target)
        temp, written = self._write_temp(target, new_text.encode("utf-8"))
        old_fd: int | None = None
        try:
            if self._before_replace is not None:
                self._before_replace(target)
            if before is not None:
                # Held across the rename: a writer that opened the file first writes here.
                old_fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
            if self._snapshot(target) != before or not _same_file(old_fd, before):
                remove(temp)
                _close(old_fd)
                return False
            self._replace(temp, target)
        except OSError as error:
            remove(temp)
            _close(old_fd)
            raise self._write_error(error) from None
        except BaseException:
            remove(temp)
            _close(old_fd)
            raise
        self._last_written = written
        if old_fd is not None and before is not None:
            self._watch(old_fd, before.data)
        self._fsync_dir(target.parent)
        return True

    def _check_replaceable(self, target: Path) -> None:
        """Refuse a file that the rename would not replace faithfully (`replace_problem`)."""
        try:
            info = os.lstat(target)
        except OSError as error:
            raise self._write_error(error) from None
        problem = replace_problem(self.path, info)
        if problem is not None:
            raise FileWriteError(f"{problem}; the file was left unchanged")

    def _target(self) -> Path:
        """The real file behind any symlinks, so that the rename keeps the link."""
        target = Path(os.path.realpath(self.path))
        if target.is_symlink():
            # realpath gives up on a loop and returns a link.
            raise FileWriteError(f"{self.path}: symlink loop; fix the link by hand")
        return target

    def _make_dir(self, directory: Path) -> None:
        try:
            make_directories(directory, DIR_MODE)
        except OSError as error:
            raise self._write_error(error) from None

    @contextlib.contextmanager
    def _flock(self, target: Path) -> Iterator[None]:
        try:
            fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise self._write_error(error) from None
        try:
            deadline = self._monotonic() + self._lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # Polling rather than blocking: a hung lock holder must
                    # not stall the daemon forever.
                    if self._monotonic() >= deadline:
                        raise FileWriteError(
                            f"{self.path}: another credd writer has held the lock"
                            f" {lock_path(target)} for {self._lock_timeout:g}s; try again"
                        ) from None
                    self._sleep(_LOCK_POLL_SECONDS)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _snapshot(self, target: Path) -> _Snapshot | None:
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise self._read_error(error) from None
        try:
            info = os.fstat(fd)
            chunks: list[bytes] = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        except OSError as error:
            raise self._read_error(error) from None
        finally:
            os.close(fd)
        data = b"".join(chunks)
        return _Snapshot(*_identity(info), hashlib.sha256(data).hexdigest(), data)

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise CredentialsFileError(str(self.path), line, "not valid UTF-8") from None

    def _write_temp(self, target: Path, data: bytes) -> tuple[Path, tuple[int, int, int, int]]:
        """The temp file, written and fsynced, and its identity (which the rename keeps)."""
        temp = temp_path(target)
        try:
            info = write_new(temp, data, mode=FILE_MODE, write=self._write, fsync=self._fsync)
        except OSError as error:
            raise self._write_error(error) from None
        return temp, _identity(info)

    def _fsync_dir(self, directory: Path) -> None:
        # The rename is done: the new file is in place. A directory that
        # cannot be fsynced (some filesystems refuse) only weakens crash
        # durability, so it is logged rather than reported as a failed write.
        try:
            fsync_directory(directory, fsync=self._fsync)
        except OSError as error:
            log.warning("%s: could not fsync the directory: %s", directory, errno_text(error))

    def _sweep(self, target: Path) -> list[Path]:
        pattern = re.compile(re.escape(temp_prefix(target)) + r"(\d+)-[0-9a-f]+")
        removed: list[Path] = []
        try:
            names = os.listdir(target.parent)
        except OSError:
            return removed
        now = self._wall_ns() / 1e9
        for name in names:
            match = pattern.fullmatch(name)
            if match is None:
                continue
            temp = target.parent / name
            try:
                age = now - temp.lstat().st_mtime
            except OSError:
                continue
            if _pid_alive(int(match.group(1))) and age < STALE_TEMP_SECONDS:
                continue
            if remove(temp):
                log.info("removed %s, left by an interrupted write", temp)
                removed.append(temp)
        return removed

    def _write_error(self, error: OSError) -> FileWriteError:
        return FileWriteError(
            f"{self.path}: cannot be written ({errno_text(error)}); the file was left unchanged"
        )

    def _read_error(self, error: OSError) -> CredentialsFileError:
        return CredentialsFileError(str(self.path), None, f"cannot be read ({errno_text(error)})")


def replace_problem(path: Path, info: os.stat_result) -> str | None:
    """Why credd will not replace the file `info` describes, with the fix; None if it will.

    Another user's file would silently become ours (and lose its owner's access); a
    hard-linked file would be split, its other names keeping the old secrets.
    """
    if info.st_uid != os.getuid():
        return (
            f"{path}: belongs to uid {info.st_uid}, not to you (uid {os.getuid()});"
            " credd will not replace another user's file: chown it to yourself or set"
            " credentials_file in the policy"
        )
    if info.st_nlink > 1:
        return (
            f"{path}: has {info.st_nlink} hard links, and replacing it would leave"
            " the other names with the old credentials: make the others symlinks to it"
        )
    return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _merged(
    first: Mapping[str, Mapping[str, str | None]], then: Mapping[str, Mapping[str, str | None]]
) -> dict[str, dict[str, str | None]]:
    """Both sets of updates, `then` winning where they set the same key."""
    merged: dict[str, dict[str, str | None]] = {name: dict(keys) for name, keys in first.items()}
    for name, keys in then.items():
        merged.setdefault(name, {}).update(keys)
    return merged


def _identity(info: os.stat_result) -> tuple[int, int, int, int]:
    """Device, inode, size and mtime_ns: a file's identity, and whether it changed."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _same_file(fd: int | None, snapshot: _Snapshot | None) -> bool:
    """Whether `fd` is open on the file `snapshot` was taken of (both None: no file)."""
    if fd is None or snapshot is None:
        return fd is None and snapshot is None
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino) == (snapshot.device, snapshot.inode)


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
