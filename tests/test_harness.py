"""The harness's own moving parts that the other tests would only meet by chance.

The Secret Service (support/secret_service.py) is started again when its private bus
ends before the keyring answers, which happens too rarely to be met in a test run on
purpose; here the first starts are made to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import secret_service


def _ending(starts: str) -> str:
    """The harness's script, but the starts numbered in `starts` end at once, as when
    the bus is gone early (their directory is start-N)."""
    return f"""
case " {starts} " in *" $(basename "$(dirname "$KEYRING_LOG")" | cut -d- -f2) "*)
    echo "$DBUS_SESSION_BUS_ADDRESS"; echo "made to end" >"$KEYRING_LOG"; exit 3;;
esac
{secret_service._SCRIPT}"""


def test_a_start_whose_bus_ends_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first start ends before the keyring answers: the second one serves, and the
    first one's log says what happened."""
    monkeypatch.setattr(secret_service, "_SCRIPT", _ending("1"))
    with secret_service.secret_service(tmp_path, timeout=10) as service:
        assert service.is_locked() is False
    assert (tmp_path / "start-1" / "gnome-keyring.log").read_text() == "made to end\n"
    assert (tmp_path / "start-2" / "gnome-keyring.log").exists()
    assert not (tmp_path / "start-3").exists()


def test_a_bus_that_always_ends_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every start ends: one error naming how many and what the keyring daemon said."""
    monkeypatch.setattr(secret_service, "_SCRIPT", _ending("1 2 3"))
    with (
        pytest.raises(RuntimeError, match="ended while starting, 3 times") as raised,
        secret_service.secret_service(tmp_path, timeout=10),
    ):
        pass
    assert str(raised.value).count("made to end") == 3
