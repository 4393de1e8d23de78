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
   cannot be parsed is never rewritten);
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
that takes no lock can lose a change: a rewrite that lands between the check
and the rename is replaced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from credd import credfile
from credd.errors import CredentialsFileError, FileWriteError

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
# A temp file older than this is a crashed write's even if its pid was reused.
STALE_TEMP_SECONDS = 60.0
# How often an update starts again when another program keeps changing the file.
MAX_ATTEMPTS = 5
LOCK_TIMEOUT_SECONDS = 10.0
_LOCK_POLL_SECONDS = 0.02


def lock_path(target: Path) -> Path:
    """The lock file beside `target`: `.<name>.credd.lock`."""
    return target.with_name(f".{target.name}.credd.lock")


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.credd-tmp-"


@dataclass(frozen=True)
class _Snapshot:
    """What the file was when it was read: its identity and its bytes."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    sha256: str
    data: bytes


class CredentialsWriter:
    """Reads and atomically updates one credentials file.

    Safe across threads (a lock around each update) and across processes
    (`flock` on a sibling lock file). The OS calls that tests need to fail or
    race are keyword arguments with production defaults: `write`, `fsync`,
    `replace`, and `before_replace`, called with the target path after the
    temp file is written and just before the check for a concurrent change.
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
    ) -> None:
        self.path = path
        self._write = write
        self._fsync = fsync
        self._replace = replace
        self._before_replace = before_replace
        self._max_attempts = max_attempts
        self._lock_timeout = lock_timeout
        self._thread_lock = threading.Lock()

    def read(self) -> dict[str, dict[str, str]]:
        """The parsed file (section -> key -> value); empty when the file does not exist.

        Raises `CredentialsFileError` when it cannot be read or parsed.
        """
        snapshot = self._snapshot(self._target())
        if snapshot is None:
            return {}
        return credfile.parse(self._decode(snapshot.data), path=str(self.path))

    def signature(self) -> tuple[int, int, int, int] | None:
        """The file's identity now (device, inode, size, mtime_ns), or None when it is absent.

        Cheap enough for every heartbeat: the daemon re-reads the file only when it changed.
        """
        try:
            info = os.stat(self._target())
        except OSError:
            return None
        return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)

    def update(self, updates: Mapping[str, Mapping[str, str | None]]) -> None:
        """Set (or, with None, remove) keys of any number of sections in one atomic write.

        Raises `CredentialsFileError` when the file cannot be parsed (it is
        left as it is) and `FileWriteError` when it cannot be written.
        """
        with self._thread_lock:
            target = self._target()
            self._make_dir(target.parent)
            with self._flock(target):
                self._sweep(target)
                for _ in range(self._max_attempts):
                    if self._write_once(target, updates):
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

    def _write_once(self, target: Path, updates: Mapping[str, Mapping[str, str | None]]) -> bool:
        """One read-apply-write round; False when the file changed under it."""
        before = self._snapshot(target)
        text = self._decode(before.data) if before else ""
        new_text = credfile.apply(text, updates, path=str(self.path))
        if before is not None and new_text == text:
            return True
        if before is None and not new_text:
            return True
        if before is not None:
            self._check_replaceable(target)
        temp = self._write_temp(target, new_text.encode("utf-8"))
        try:
            if self._before_replace is not None:
                self._before_replace(target)
            if self._snapshot(target) != before:
                _remove(temp)
                return False
            self._replace(temp, target)
        except OSError as error:
            _remove(temp)
            raise self._write_error(error) from None
        except BaseException:
            _remove(temp)
            raise
        self._fsync_dir(target.parent)
        return True

    def _check_replaceable(self, target: Path) -> None:
        """Refuse a file that the rename would not replace faithfully.

        Another user's file would silently become ours (and lose its owner's access);
        a hard-linked file would be split, its other names keeping the old secrets.
        """
        try:
            info = os.lstat(target)
        except OSError as error:
            raise self._write_error(error) from None
        if info.st_uid != os.getuid():
            raise FileWriteError(
                f"{self.path}: belongs to uid {info.st_uid}, not to you (uid {os.getuid()});"
                " credd will not replace another user's file: chown it to yourself or set"
                " credentials_file in the policy; the file was left unchanged"
            )
        if info.st_nlink > 1:
            raise FileWriteError(
                f"{self.path}: has {info.st_nlink} hard links, and replacing it would leave"
                " the other names with the old credentials: make the others symlinks to it;"
                " the file was left unchanged"
            )

    def _target(self) -> Path:
        """The real file behind any symlinks, so that the rename keeps the link."""
        target = Path(os.path.realpath(self.path))
        if target.is_symlink():
            # realpath gives up on a loop and returns a link.
            raise FileWriteError(f"{self.path}: symlink loop; fix the link by hand")
        return target

    def _make_dir(self, directory: Path) -> None:
        missing: list[Path] = []
        for parent in [directory, *directory.parents]:
            if parent.exists():
                break
            missing.append(parent)
        try:
            for parent in reversed(missing):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(parent, DIR_MODE)
                    # mkdir's mode is filtered by the umask; 0700 is meant.
                    os.chmod(parent, DIR_MODE)
        except OSError as error:
            raise self._write_error(error) from None

    @contextlib.contextmanager
    def _flock(self, target: Path) -> Iterator[None]:
        try:
            fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise self._write_error(error) from None
        try:
            deadline = time.monotonic() + self._lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # Polling rather than blocking: a hung lock holder must
                    # not stall the daemon forever.
                    if time.monotonic() >= deadline:
                        raise FileWriteError(
                            f"{self.path}: another credd writer has held the lock"
                            f" {lock_path(target)} for {self._lock_timeout:g}s; try again"
                        ) from None
                    time.sleep(_LOCK_POLL_SECONDS)
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
        return _Snapshot(
            info.st_dev,
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            hashlib.sha256(data).hexdigest(),
            data,
        )

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            line = data[: error.start].count(b"\n") + 1
            raise CredentialsFileError(str(self.path), line, "not valid UTF-8") from None

    def _write_temp(self, target: Path, data: bytes) -> Path:
        temp = target.with_name(f"{_temp_prefix(target)}{os.getpid()}-{secrets.token_hex(6)}")
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                FILE_MODE,
            )
        except OSError as error:
            raise self._write_error(error) from None
        try:
            try:
                os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away
                view = memoryview(data)
                while view:
                    view = view[self._write(fd, bytes(view)) :]
                self._fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            _remove(temp)
            raise self._write_error(error) from None
        except BaseException:
            _remove(temp)
            raise
        return temp

    def _fsync_dir(self, directory: Path) -> None:
        # The rename is done: the new file is in place. A directory that
        # cannot be fsynced (some filesystems refuse) only weakens crash
        # durability, so it is logged rather than reported as a failed write.
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                self._fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            log.warning("%s: could not fsync the directory: %s", directory, _errno_text(error))

    def _sweep(self, target: Path) -> list[Path]:
        pattern = re.compile(re.escape(_temp_prefix(target)) + r"(\d+)-[0-9a-f]+")
        removed: list[Path] = []
        try:
            names = os.listdir(target.parent)
        except OSError:
            return removed
        now = time.time()
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
            if _remove(temp):
                log.info("removed %s, left by an interrupted write", temp)
                removed.append(temp)
        return removed

    def _write_error(self, error: OSError) -> FileWriteError:
        return FileWriteError(
            f"{self.path}: cannot write the credentials file ({_errno_text(error)});"
            " the file was left unchanged"
        )

    def _read_error(self, error: OSError) -> CredentialsFileError:
        return CredentialsFileError(str(self.path), None, f"cannot be read ({_errno_text(error)})")


def _errno_text(error: OSError) -> str:
    if error.errno is None:
        return type(error).__name__
    name = errno.errorcode.get(error.errno, str(error.errno))
    return f"{name}: {os.strerror(error.errno)}"


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


def _remove(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("%s: could not remove: %s", path, _errno_text(error))
        return False
    return True
