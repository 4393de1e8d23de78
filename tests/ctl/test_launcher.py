"""credctl as users install it: a plain launcher, so nothing is imported before `main()`.

The console script an older pip writes for `[project.scripts]` imports `re` first
(SPEC.md's known traps): Debian 12's own pip, the one `python3 -m venv` gives, still
does. credctl ships `bin/credctl` instead, whose `#!` line the installer points at its
Python. Both installs are real: pip from Debian's python3 (support/user_venv.py, with
the dependencies from the registry) and pipx into a private PIPX_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.user_venv import copy_sources, installed_venv

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# What credctl's common paths must not import; `re` is the one a pip launcher adds.
NOT_ON_THE_COMMON_PATH = ("re", "argparse", "json", "boto3", "botocore")


def _imported(credctl: Path, python: Path, tmp_path: Path) -> list[str]:
    """The modules the launcher's `credctl status` imports, with no daemon to answer
    (exit 3). Run by its own Python with -X importtime: an installer may put options on
    the #! line (a recent pip writes `-E`, which would ignore PYTHONPROFILEIMPORTTIME)."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "CREDD_SOCKET": str(tmp_path / "none" / "credd.sock"),
    }
    done = subprocess.run(
        [str(python), "-X", "importtime", str(credctl), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, done.stderr[-2000:]
    return [line.rsplit("|", 1)[1].strip() for line in lines[1:]]


def _check(credctl: Path, bin_dir: Path, tmp_path: Path) -> None:
    text = credctl.read_text()
    interpreter = text.splitlines()[0].removeprefix("#!").split()[0]
    assert interpreter in (f"{bin_dir}/python", f"{bin_dir}/python3"), text.splitlines()[0]
    assert "credctl's launcher" in text
    imported = _imported(credctl, Path(interpreter), tmp_path)
    assert "credd.ctl.main" in imported
    assert [m for m in NOT_ON_THE_COMMON_PATH if m in imported] == []


def test_pip_install_gives_the_launcher(tmp_path: Path) -> None:
    bin_dir = installed_venv(REPO)
    _check(bin_dir / "credctl", bin_dir, tmp_path)
    # credd stays a console script (its imports dwarf `re`) and runs.
    done = subprocess.run(
        [str(bin_dir / "credd"), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("credd "), done.stderr


def test_pipx_install_gives_the_launcher(tmp_path: Path) -> None:
    """`pipx install .`, into a PIPX_HOME of the test's own (pip's cache holds the
    dependencies by now: `make test` has just installed them)."""
    source = tmp_path / "src"
    copy_sources(REPO, source)
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipx", "install", str(source)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    credctl = tmp_path / "bin" / "credctl"
    _check(credctl.resolve(), tmp_path / "pipx" / "venvs" / "credd" / "bin", tmp_path)
