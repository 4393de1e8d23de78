"""Writing a file whole or not at all: the one way credd writes its files (CONVENTIONS 13).

Standard library only: `credctl import` reaches it through the safe writer.

`atomic_write` writes a temp file beside the target with the mode asked for
(whatever the umask), fsyncs it, renames it over the target and fsyncs the
directory: a reader sees the old file or the new one, never a part, and a
crash leaves at most a temp file named `.<name>.credd-tmp-<pid>-<random>`.
A symlinked target is written through: the link stays a link.

The credentials file's safe writer (`credd.files.writer`) uses the steps
(`write_new`, `fsync_directory`) with its own checks between them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def temp_prefix(target: Path) -> str:
    """What every temp file of `target` is named with: `.<name>.credd-tmp-`."""
    return f".{target.name}.credd-tmp-"


def temp_path(target: Path) -> Path:
    """A fresh temp file name beside `target`, carrying this process's pid."""
    return target.with_name(f"{temp_prefix(target)}{os.getpid()}-{secrets.token_hex(6)}")


def write_new(
    path: Path,
    data: bytes,
    *,
    mode: int,
    write: Callable[[int, bytes], int] = os.write,
    fsync: Callable[[int], None] = os.fsync,
) -> os.stat_result:
    """Create `path` with exactly `mode`, write all of `data`, fsync it; its final stat.

    Never opens an existing file or follows a symlink there (FileExistsError,
    OSError). On any failure the file is removed and the error raised.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away
            view = memoryview(data)
            while view:
                view = view[write(fd, bytes(view)) :]
            fsync(fd)
            return os.fstat(fd)
        finally:
            os.close(fd)
    except BaseException:
        remove(path)
        raise


def fsync_directory(directory: Path, *, fsync: Callable[[int], None] = os.fsync) -> None:
    """Make a rename in `directory` durable; OSError where the filesystem refuses."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    data: bytes,
    *,
    mode: int,
    replace: bool = True,
    fsync: Callable[[int], None] = os.fsync,
) -> Path:
    """Write `data` as the whole of `path` (through a symlink to its target), with `mode`.

    With `replace`, an existing file is replaced; without it, FileExistsError
    if one is there (even one that appeared meanwhile), and nothing is written.
    The directory must exist. Returns the path written (the symlink's target).
    On any failure the target is as it was and no temp file is left.
    """
    target = Path(os.path.realpath(path))
    temp = temp_path(target)
    write_new(temp, data, mode=mode, fsync=fsync)
    try:
        if replace:
            os.replace(temp, target)
        else:
            os.link(temp, target)  # fails if the target exists: never a silent overwrite
            remove(temp)
    except BaseException:
        remove(temp)
        raise
    try:
        fsync_directory(target.parent, fsync=fsync)
    except OSError as error:
        # The new file is in place; only crash durability is weaker.
        log.warning("%s: could not fsync the directory: %s", target.parent, errno_text(error))
    return target


def make_directories(directory: Path, mode: int) -> None:
    """Create `directory` and its missing parents, each with exactly `mode`.

    Directories that exist are left as they are, whatever their mode.
    """
    missing: list[Path] = []
    for parent in [directory, *directory.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(parent, mode)
            # mkdir's mode is filtered by the umask.
            os.chmod(parent, mode)


def remove(path: Path) -> bool:
    """Unlink `path` if it is there; False (and a warning) when it cannot be."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("%s: could not remove: %s", path, errno_text(error))
        return False
    return True


def errno_text(error: OSError) -> str:
    """`ENOSPC: No space left on device`: an OS error as logs and messages show it."""
    if error.errno is None:
        return type(error).__name__
    name = errno.errorcode.get(error.errno, str(error.errno))
    return f"{name}: {os.strerror(error.errno)}"
