"""credd.errors: one place maps every error to its exit status, for credd and credctl alike."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import credd
from credd import errors
from credd.errors import (
    EXIT_FOR_ERROR,
    EXIT_FOR_FAULT,
    FAULT_NAMES,
    AlreadyRunningError,
    BadInputError,
    CodeRejectedError,
    CreddError,
    CredentialsFileError,
    DaemonUnreachableError,
    EndpointUnavailableError,
    Fault,
    FileWriteError,
    KeyringError,
    NoCredentialsError,
    PolicyError,
    RemoteError,
    SocketPathError,
    StsError,
    StsTransientError,
    UntrustedDaemonError,
)

REPO = Path(__file__).resolve().parents[1]

# SPEC.md: 1 AWS said no or something failed, 2 bad input, 3 credd not running (or, for
# credctl, not to be trusted). The statuses each kind of error has always exited with.
SPEC_EXITS = [
    (CreddError("x"), 1),
    (BadInputError("x"), 2),
    (BadInputError("x", fault=Fault.UNKNOWN_PROFILE), 2),
    (PolicyError("/p", ["a"]), 2),
    (CredentialsFileError("/c", 3, "bad"), 2),
    (FileWriteError("x"), 1),
    (CodeRejectedError("x"), 1),
    (StsError("x"), 1),
    (StsTransientError("x"), 1),
    (NoCredentialsError("x"), 1),
    (EndpointUnavailableError("x"), 1),
    (KeyringError("x"), 1),
    (DaemonUnreachableError("x"), 3),
    (UntrustedDaemonError("x"), 3),
    (SocketPathError("x"), 2),
    (AlreadyRunningError("x"), 1),
]


@pytest.mark.parametrize(
    ("error", "status"), SPEC_EXITS, ids=[type(e).__name__ for e, _ in SPEC_EXITS]
)
def test_each_kind_of_error_exits_as_the_spec_says(error: CreddError, status: int) -> None:
    """The statuses scripts rely on, kind by kind."""
    assert error.exit_status == status


def test_every_error_class_is_in_the_one_table() -> None:
    """Each class of credd/errors.py has its row in EXIT_FOR_ERROR (RemoteError goes by its
    fault), and each row is pinned above."""
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, CreddError)
    }
    assert defined - {RemoteError} == set(EXIT_FOR_ERROR)
    assert {type(error) for error, _ in SPEC_EXITS} == set(EXIT_FOR_ERROR)


@pytest.mark.parametrize("code", sorted(FAULT_NAMES))
def test_an_answer_of_the_daemon_exits_by_its_fault(code: int) -> None:
    """RemoteError's status is its fault's, whatever the class table says."""
    assert RemoteError(code, "m").exit_status == EXIT_FOR_FAULT[code]


def test_the_fault_table_is_the_one_docs_protocol_md_shows() -> None:
    """docs/protocol.md's `credctl exit` column is EXIT_FOR_FAULT."""
    text = (REPO / "docs" / "protocol.md").read_text()
    shown = {
        int(code): int(status)
        for code, status in re.findall(r"^\| (\d+) \| `[A-Z_]+` \|.*\| (\d) \|$", text, re.M)
    }
    assert shown == EXIT_FOR_FAULT


def _all_modules() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(credd.__path__, "credd.")
        if not info.name.endswith("__main__")
    ]
    for name in names:
        importlib.import_module(name)
    return names


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_no_error_class_sets_its_own_exit_status() -> None:
    """With every module of credd imported, no CreddError subclass carries `exit_status`:
    the mapping lives in credd/errors.py alone (CONVENTIONS 13)."""
    assert len(_all_modules()) > 20
    subclasses = _subclasses(CreddError)
    assert RemoteError in subclasses
    setting = [cls.__qualname__ for cls in subclasses if "exit_status" in vars(cls)]
    assert setting == []
