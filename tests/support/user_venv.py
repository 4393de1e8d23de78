"""credd installed as users install it, in a venv any user can run: for tests as another user.

`installed_venv(repo)` makes a venv from Debian's /usr/bin/python3 and installs
the repository into it with pip, not editable, with its dependencies from the
package registry. The venv of the development tree cannot serve: its `python`
is a symlink into root's own interpreter (under /root, mode 0700 on these
machines) and its credd is an editable install pointing into the work tree.

The venv is kept under CACHE, in a directory named by a hash of what pip
installs (pyproject.toml, credd/ and bin/) and of the interpreter's version: a run
whose sources have not changed finds it ready and pays nothing. A new hash
builds a new venv; venvs no run has used for a day are removed (other work
trees on the machine may be using theirs right now). Builds and clean-ups take
a lock, so concurrent runs wait for each other rather than race.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

SYSTEM_PYTHON = Path("/usr/bin/python3")
CACHE = Path("/var/tmp/credd-test-venvs")
COMPLETE = ".complete"
INSTALL_TIMEOUT = 600.0
UNUSED_FOR = 24 * 3600.0


class NoSystemPython(Exception):
    """Debian's python3 or its venv module is missing; the message says which package."""


def _sources(repo: Path) -> list[Path]:
    """What pip reads to install credd, in a stable order."""
    package = sorted(
        p
        for folder in ("credd", "bin")
        for p in (repo / folder).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )
    return [repo / "pyproject.toml", *package]


def copy_sources(repo: Path, source: Path) -> None:
    """Copy what pip needs to install credd into the new directory `source`.

    pip builds a local directory in place (build/, *.egg-info): installs build a copy.
    """
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, source / name)
    for extra in repo.glob("LICENSE*"):
        shutil.copy2(extra, source / extra.name)
    for folder in ("credd", "bin"):
        shutil.copytree(
            repo / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )


def source_hash(repo: Path, python_version: str) -> str:
    """A short hash of the sources pip installs and of the interpreter's version."""
    digest = hashlib.sha256(python_version.encode())
    for path in _sources(repo):
        digest.update(str(path.relative_to(repo)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _system_python_version() -> str:
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        raise NoSystemPython(f"no {SYSTEM_PYTHON} (Debian: python3)")
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import ensurepip, sys; print(sys.version)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        raise NoSystemPython(f"{SYSTEM_PYTHON} cannot make a venv (Debian: python3-venv)")
    return probe.stdout.strip()


def _check_cache_dir() -> None:
    """CACHE exists, is root's own real directory, and only root may write in it."""
    CACHE.mkdir(mode=0o755, exist_ok=True)
    st = CACHE.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(f"{CACHE} is not a directory of mine that only I can write in")


def _run(argv: list[str]) -> None:
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
        umask=0o022,  # every user may read and run the venv
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        )


def _build(repo: Path, venv: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    _run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)])
    with tempfile.TemporaryDirectory(prefix="credd-src.") as tmp:
        source = Path(tmp) / "credd-src"
        copy_sources(repo, source)
        pip = [str(venv / "bin" / "python"), "-m", "pip"]
        _run([*pip, "install", "--quiet", "--disable-pip-version-check", str(source)])
    (venv / COMPLETE).write_text("")


def installed_venv(repo: Path) -> Path:
    """The venv's bin/ with `credd` and `credctl` of `repo`, built if not cached (as root)."""
    key = source_hash(repo, _system_python_version())
    _check_cache_dir()
    venv = CACHE / key
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / COMPLETE).is_file():
            _build(repo, venv)
        (venv / COMPLETE).touch()  # its mtime says when a run last used it
        _remove_unused(keep=venv)
    return venv / "bin"


def _remove_unused(keep: Path) -> None:
    """Remove venvs unused for UNUSED_FOR, and unfinished builds (none runs: we hold the lock)."""
    now = time.time()
    for venv in CACHE.iterdir():
        if venv == keep or not venv.is_dir() or venv.is_symlink():
            continue
        marker = venv / COMPLETE
        if not marker.is_file() or now - marker.stat().st_mtime > UNUSED_FOR:
            shutil.rmtree(venv, ignore_errors=True)
