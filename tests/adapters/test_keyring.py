"""The keyring adapter (credd/adapters/keyring.py) against a real Secret Service (GNOME
Keyring on a private session bus, tests/support/secret_service.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.secret_service import SecretService, secret_service

from credd.adapters import keyring as keyring_module
from credd.adapters.keyring import SERVICE, Keyring, StoredKey, long_term_keys
from credd.credentials import Credentials
from credd.errors import EXIT_FAILED, KeyringError

KEY_ID = "AKIAKEYRINGTEST0WXYZ"
SECRET = "canary-keyring-secret-Q9v8"  # a canary: must never show outside the keyring
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def keyring() -> Keyring:
    return Keyring(clock=lambda: WHEN)


def test_put_stores_one_item_per_profile_and_reads_it_back(
    secret_service_env: SecretService,
) -> None:
    """An item of service `credd`, user the profile, holding key id, secret and when."""
    stored = keyring().put("alice", KEY_ID, SECRET)
    assert stored == StoredKey(KEY_ID, SECRET, WHEN)
    item = json.loads(secret_service_env.secrets()["alice"])
    assert item["aws_access_key_id"] == KEY_ID
    assert item["aws_secret_access_key"] == SECRET
    assert item["stored_at"] == "2026-12-01T09:30:00Z"
    assert keyring().get("alice") == stored
    assert keyring().get("bob") is None


def test_profiles_are_listed_without_unlocking(secret_service_env: SecretService) -> None:
    """The Secret Service shows items' attributes while locked: no prompt to list them."""
    store = keyring()
    store.put("alice", KEY_ID, SECRET)
    store.put("bob", KEY_ID, SECRET)
    secret_service_env.lock()
    assert keyring().profiles() == frozenset({"alice", "bob"})
    assert secret_service_env.is_locked()


def test_a_locked_keyring_is_a_clear_error_without_secrets(
    secret_service_env: SecretService,
) -> None:
    """Locked: KeyringError says so and what to do; exit status 1; no secret anywhere."""
    keyring().put("alice", KEY_ID, SECRET)
    secret_service_env.lock()
    with pytest.raises(KeyringError) as caught:
        keyring().get("alice")
    message = caught.value.message
    assert message.startswith("cannot read credd/alice in the keyring: the keyring is locked;")
    assert "unlock" in message
    assert caught.value.exit_status == EXIT_FAILED
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert SECRET not in repr(caught.value) and KEY_ID not in message
    secret_service_env.unlock()
    assert keyring().get("alice") is not None


def test_no_keyring_at_all(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """No session bus: `no keyring is available`, and nothing can be listed."""
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    with pytest.raises(KeyringError, match="no keyring is available"):
        keyring().get("alice")
    assert keyring().profiles() is None


def test_delete(secret_service_env: SecretService) -> None:
    """Delete says whether there was an item."""
    store = keyring()
    store.put("alice", KEY_ID, SECRET)
    assert store.delete("alice") is True
    assert store.delete("alice") is False
    assert store.get("alice") is None


def test_an_item_credd_did_not_write_is_refused(secret_service_env: SecretService) -> None:
    """Someone else's password under service `credd` is not taken for a key."""
    from keyring.backends import SecretService as keyrings_own

    keyrings_own.Keyring().set_password(SERVICE, "alice", "hunter2-canary")
    with pytest.raises(KeyringError, match="does not hold credd's access key") as caught:
        keyring().get("alice")
    assert "hunter2" not in caught.value.message


def test_keyring_and_credd_read_each_others_items(secret_service_env: SecretService) -> None:
    """credd speaks to the Secret Service itself, and keeps its items exactly as `keyring`'s
    own backend does (attributes, label, default collection): each reads what the other
    wrote, so `keyring get credd PROFILE` still shows a profile's item."""
    from keyring.backends import SecretService as keyrings_own

    own = keyrings_own.Keyring()
    stored = keyring().put("alice", KEY_ID, SECRET)
    assert json.loads(own.get_password(SERVICE, "alice")) == json.loads(stored.encode())
    own.set_password(SERVICE, "bob", stored.encode())
    assert keyring().get("bob") == stored
    assert secret_service_env.items() == {
        user: (
            f"Password for '{user}' on '{SERVICE}'",
            {"service": SERVICE, "username": user, "application": "Python keyring library"},
        )
        for user in ("alice", "bob")
    }
    store = keyring()
    assert store.describe() == "SecretService Keyring"
    assert repr(store) == "Keyring(backend=_SecretService)"  # credd's, not keyring's


def test_the_secret_service_is_reached_without_cryptography(
    secret_service_env: SecretService,
) -> None:
    """What the daemon keeps resident (docs/performance.md, #3): jeepney, not SecretStorage
    and `cryptography`, for every call a profile's key makes."""
    script = (
        "import sys\n"
        "from credd.adapters.keyring import Keyring\n"
        "store = Keyring()\n"
        f"store.put('alice', {KEY_ID!r}, {SECRET!r})\n"
        f"assert store.get('alice').secret_access_key == {SECRET!r}\n"
        "assert store.profiles() == {'alice'}\n"
        "assert store.delete('alice')\n"
        "print(sorted(m for m in ('cryptography', 'secretstorage', 'jeepney') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == "['jeepney']"


def test_keyrings_own_configuration_wins(
    secret_service_env: SecretService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backend named in `PYTHON_KEYRING_BACKEND` is used as it is, `keyring`'s own Secret
    Service backend included (and its items are still listed without unlocking)."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.SecretService.Keyring")
    store = keyring()
    store.put("alice", KEY_ID, SECRET)
    assert repr(store) == "Keyring(backend=Keyring)"
    secret_service_env.lock()
    assert keyring().profiles() == frozenset({"alice"})
    secret_service_env.unlock()
    assert keyring().get("alice") == StoredKey(KEY_ID, SECRET, WHEN)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    assert keyring().get("alice") is None and keyring().profiles() is None


def test_a_keyring_with_no_default_collection(tmp_path: Path) -> None:
    """With no default collection one is asked for, as `keyring` does; a prompt that
    cannot be answered (a headless machine) is keyring's InitError, asked again once (as
    for GNOME Keyring's passing "no default collection"), then a clear error; nothing is
    stored."""
    methods: list[str] = []
    call = keyring_module._Conversation.call

    def recording(self: Any, path: str, interface: str, method: str, *args: Any) -> Any:
        methods.append(method)
        return call(self, path, interface, method, *args)

    with secret_service(tmp_path) as service, pytest.MonkeyPatch.context() as patch:
        for name, value in service.env.items():
            patch.setenv(name, value)
        patch.setattr(keyring_module._Conversation, "call", recording)
        service.remove_default_collection()
        with pytest.raises(KeyringError) as caught:
            keyring().put("alice", KEY_ID, SECRET)
        assert caught.value.message.startswith(
            "cannot store credd/alice in the keyring: the keyring refused (InitError);"
        )
        assert methods.count("CreateCollection") == 2 and "CreateItem" not in methods
        assert keyring().profiles() == frozenset()


def test_without_jeepney_keyring_chooses(
    secret_service_env: SecretService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where jeepney is not installed (it is a dependency on Linux alone: the Keychain on
    macOS), `keyring` chooses the backend as it would without credd."""
    import secretstorage  # noqa: F401  keyring's own backend, loaded before jeepney hides

    monkeypatch.setitem(sys.modules, "jeepney.bus_messages", None)
    store = keyring()
    store.put("alice", KEY_ID, SECRET)
    assert repr(store) == "Keyring(backend=Keyring)"  # keyring's Secret Service backend
    assert keyring().get("alice") == StoredKey(KEY_ID, SECRET, WHEN)


def test_stored_key_repr_masks() -> None:
    """The key id masked, the secret never."""
    text = repr(StoredKey(KEY_ID, SECRET, WHEN))
    assert SECRET not in text and KEY_ID not in text and "****WXYZ" in text


def test_long_term_keys_keyring_first(secret_service_env: SecretService) -> None:
    """The keyring wins over the file; the file is used when the keyring has no item, or
    when it is locked; locked with no keys in the file is an error (the keys may be there)."""
    in_file = Credentials("AKIAFILEKEY00000ABCD", "file-secret")
    store = keyring()
    assert long_term_keys(store, "alice", in_file) == (in_file, "file")
    assert long_term_keys(store, "alice", None) is None
    store.put("alice", KEY_ID, SECRET)
    assert long_term_keys(store, "alice", in_file) == (Credentials(KEY_ID, SECRET), "keyring")
    secret_service_env.lock()
    assert long_term_keys(keyring(), "alice", in_file) == (in_file, "file")
    with pytest.raises(KeyringError, match="locked"):
        long_term_keys(keyring(), "alice", None)
    assert long_term_keys(None, "alice", in_file) == (in_file, "file")


class _FlakyBackend:
    """A backend that fails its first `failures` calls, as GNOME Keyring now and then
    does for an instant (its default collection reported missing), then works."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.stored: dict[str, str] = {}

    def _fail_first(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"no such collection (canary {SECRET})")

    def get_password(self, service: str, user: str) -> str | None:
        self._fail_first()
        return self.stored.get(user)

    def set_password(self, service: str, user: str, password: str) -> None:
        self._fail_first()
        self.stored[user] = password


def test_a_passing_failure_is_asked_again_once() -> None:
    """One failure is asked again and the key is stored; two are a clear error that
    names neither the library's text nor the secret."""
    flaky = _FlakyBackend(failures=1)
    Keyring(backend=flaky, clock=lambda: WHEN).put("alice", KEY_ID, SECRET)
    assert flaky.calls == 3 and json.loads(flaky.stored["alice"])  # failed, stored, read back

    failing = _FlakyBackend(failures=2)
    with pytest.raises(KeyringError) as caught:
        Keyring(backend=failing, clock=lambda: WHEN).put("alice", KEY_ID, SECRET)
    assert failing.calls == 2 and failing.stored == {}  # one call, asked again once
    assert caught.value.message == (
        "cannot store credd/alice in the keyring: the keyring refused (RuntimeError); "
        + caught.value.message.split("(RuntimeError); ", 1)[1]
    )
    assert SECRET not in str(caught.value) and "canary" not in str(caught.value)
