"""Long-term keys in the OS keyring: the only home of `keyring` and `jeepney`.

One item per profile (SPEC.md "Long-term keys"): service `credd`, user the
profile's name, and as the password a small JSON object holding the access
key id, the secret and when it was stored. The backend is the platform's own
(Secret Service on Linux, the Keychain on macOS): the one `keyring`'s
configuration names (`PYTHON_KEYRING_BACKEND`, `keyringrc.cfg`), else the
Secret Service on the session bus, else the one `keyring` itself finds.

The Secret Service is spoken to by `_SecretService` below, over D-Bus with
jeepney, rather than by `keyring`'s own backend: that one goes through
SecretStorage, which loads `cryptography` (6.4 MiB resident, a tenth of the
idle daemon's RSS; docs/performance.md) to encrypt the secret on its way over
the session bus. `_SecretService` reads and writes the items exactly as
`keyring`'s backend does, so each reads what the other wrote; the secret
crosses the bus in the Secret Service's `plain` transfer (docs/keys.md says why
that gives nothing away, and how to have keyring's own backend instead).

`keyring` and jeepney are imported on first use, never when this module is
imported: credd imports this module wherever a source profile's keys may live
in the keyring, and only a profile whose keys are really looked up pays for them.

Every call can block (an unlock dialog, a slow D-Bus): the daemon makes them
in its thread pool, never on the event loop. Every failure leaves this module
as `KeyringError`, whose message says what to do and never holds a secret (the
library's own exception is not chained: its text is not ours to vouch for).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from credd.credentials import Credentials, format_utc, mask_key_id, parse_utc
from credd.errors import KeyringError

log = logging.getLogger(__name__)

SERVICE = "credd"
_FORMAT_VERSION = 1

# What every KeyringError ends with: how to make the keyring available.
UNLOCK_HINT = "unlock the keyring (log in to the desktop, or unlock it in its manager)"


@dataclass(frozen=True, repr=False)
class StoredKey:
    """A long-term access key as the keyring holds it. Its repr masks the key id, hides the
    secret."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    stored_at: datetime | None = None

    def __repr__(self) -> str:
        stored = format_utc(self.stored_at) if self.stored_at else None
        return f"StoredKey({mask_key_id(self.access_key_id)}, stored_at={stored})"

    __str__ = __repr__

    def credentials(self) -> Credentials:
        """The key as credentials STS can sign with."""
        return Credentials(self.access_key_id, self.secret_access_key)

    def encode(self) -> str:
        """The item's password: the key id, the secret and when it was stored, as JSON."""
        data: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret_access_key,
            "stored_at": format_utc(self.stored_at) if self.stored_at else None,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def decode(cls, profile: str, text: str) -> StoredKey:
        """Read an item's password; raises `KeyringError` for one credd did not write."""
        try:
            data = json.loads(text)
            key_id, secret = data["aws_access_key_id"], data["aws_secret_access_key"]
            stored = data.get("stored_at")
            if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret):
                raise ValueError
            stored_at = parse_utc(stored) if isinstance(stored, str) else None
        except (ValueError, TypeError, KeyError, AttributeError):
            raise KeyringError(
                f"the keyring item {SERVICE}/{profile} does not hold credd's access key;"
                f" store it again with `credd keys add {profile}`"
            ) from None
        return cls(key_id, secret, stored_at)

    def same_key(self, other: StoredKey) -> bool:
        """The same key id and secret (when each was stored aside)."""
        return (
            self.access_key_id == other.access_key_id
            and self.secret_access_key == other.secret_access_key
        )


class Keyring:
    """The keyring's credd items. `backend` is a `keyring` backend (default: the
    platform's, chosen on first use); `clock` stamps what is stored."""

    def __init__(
        self,
        *,
        backend: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._listing: frozenset[str] | None = None  # None: this backend cannot list
        self._listed = False
        self._absent = False  # no keyring at all (no Secret Service, no Keychain)

    def __repr__(self) -> str:
        return f"Keyring(backend={type(self._backend).__name__ if self._backend else None})"

    def describe(self) -> str:
        """The backend's name, as people know it: `SecretService Keyring`."""
        backend = self._get_backend()
        return str(getattr(backend, "name", type(backend).__name__))

    def get(self, profile: str) -> StoredKey | None:
        """The key stored for `profile`, or None when there is no item.

        Raises `KeyringError` when the keyring is locked, absent or refuses.
        """
        text = self._call(profile, "read", lambda b: b.get_password(SERVICE, profile))
        if text is None:
            return None
        return StoredKey.decode(profile, text)

    def put(self, profile: str, access_key_id: str, secret_access_key: str) -> StoredKey:
        """Store a key for `profile` (replacing any), read it back and compare.

        Raises `KeyringError` when it could not be stored or did not read back equal.
        """
        key = StoredKey(access_key_id, secret_access_key, self._clock().replace(microsecond=0))
        self._call(profile, "store", lambda b: b.set_password(SERVICE, profile, key.encode()))
        back = self.get(profile)
        if back is None or not back.same_key(key):
            raise KeyringError(
                f"the keyring did not give back the key {mask_key_id(access_key_id)} stored"
                f" for {profile}; nothing else was changed"
            )
        return back

    def delete(self, profile: str) -> bool:
        """Delete `profile`'s item; False when there was none."""
        from keyring.errors import PasswordDeleteError

        def delete(backend: Any) -> bool:
            try:
                backend.delete_password(SERVICE, profile)
            except PasswordDeleteError:
                return False
            return True

        result: bool = self._call(profile, "delete", delete)
        return result

    def profiles(self) -> frozenset[str] | None:
        """The profiles that have an item, read without unlocking; None when it cannot tell.

        The Secret Service shows items' attributes (service, user) while locked; other
        backends have no listing, and are asked profile by profile (`get`) instead.
        """
        try:
            backend = self._get_backend()
        except KeyringError:
            return None
        # A chainer (several backends viable) asks them in turn; look at its Secret Service.
        members = getattr(backend, "backends", [backend])
        if not any(_is_secret_service(b) for b in members):
            return None
        try:
            return _SecretService().usernames(SERVICE)
        except Exception as error:  # D-Bus gone, or the service refused: cannot tell
            log.debug("keyring: cannot list items: %s", type(error).__name__)
            return None

    def available(self) -> bool:
        """Whether a keyring backend is there (it may still be locked)."""
        try:
            self._get_backend()
        except KeyringError:
            return False
        return True

    @property
    def absent(self) -> bool:
        """No keyring at all on this machine (as found by the last call that looked)."""
        return self._absent

    def holds(self, profile: str) -> bool:
        """Whether the keyring holds keys for `profile`, or may (it is locked, or refused).

        For the policy's look at its sources: a keyring that is there but cannot be read
        now is given the benefit of the doubt (the renewal that needs the keys waits for
        it), one that is absent holds nothing. The listing is made once per Keyring.
        """
        if not self._listed:
            self._listing, self._listed = self.profiles(), True
        if self._listing is not None:
            return profile in self._listing
        return self._may_hold(profile)

    def holding(self, profiles: Collection[str]) -> frozenset[str]:
        """Those of `profiles` the keyring holds keys for, or may, as `holds` judges, but
        asked afresh (the daemon asks again whenever the credentials file changes)."""
        listing = self.profiles()
        if listing is not None:
            return frozenset(profiles) & listing
        return frozenset(p for p in profiles if self._may_hold(p))

    def _may_hold(self, profile: str) -> bool:
        try:
            return self.get(profile) is not None
        except KeyringError:
            return not self._absent

    def _get_backend(self) -> Any:
        if self._backend is None:
            import keyring.backend
            import keyring.core
            from keyring.backends import fail

            try:
                backend = (
                    keyring.core.load_env() or keyring.core.load_config() or _SecretService.find()
                )
                if backend is None:
                    # Chosen afresh for each Keyring, not once per process: the
                    # configuration may have come since the last choice, and the library
                    # judges which backends are viable only once unless told again.
                    with contextlib.suppress(KeyError):  # KeyError: never judged yet
                        keyring.backend.get_all_keyring.reset()
                    keyring.core.init_backend()
                    backend = keyring.core.get_keyring()
            except Exception:  # none viable: keyring says so with a RuntimeError
                backend = None
            if backend is None or isinstance(backend, fail.Keyring):
                self._absent = True
                raise KeyringError(
                    "no keyring is available (no Secret Service on the session bus, or no"
                    " Keychain); start one, or keep the keys in the credentials file"
                )
            self._backend = backend
        return self._backend

    def _call(self, profile: str, what: str, call: Callable[[Any], Any]) -> Any:
        backend = self._get_backend()
        from keyring.errors import KeyringLocked

        for _ in range(2):
            try:
                return call(backend)
            except KeyringLocked:
                failure = f"the keyring is locked; {UNLOCK_HINT}"
                break
            except Exception as error:
                # The library's text may name the item or quote D-Bus; its type says enough.
                failure = f"the keyring refused ({type(error).__name__}); {UNLOCK_HINT}"
                # Asked again once: GNOME Keyring now and then reports its default
                # collection missing for an instant and finds it on the next call.
        raise KeyringError(f"cannot {what} {SERVICE}/{profile} in the keyring: {failure}")


def long_term_keys(
    keyring: Keyring | None, profile: str, in_file: Credentials | None
) -> tuple[Credentials, str] | None:
    """A source profile's keys and where they live (`keyring` or `file`), keyring first.

    `in_file` is what the credentials file holds for the profile. When the keyring cannot
    be read and the file holds keys, the file's are used (a machine with no keyring keeps
    working); when it cannot be read and the file holds none, `KeyringError` is raised:
    the keys may be in the keyring, and the profile waits for it.
    """
    if keyring is None:
        return (in_file, "file") if in_file is not None else None
    try:
        stored = keyring.get(profile)
    except KeyringError:
        if in_file is not None:
            return in_file, "file"
        raise
    if stored is not None:
        return stored.credentials(), "keyring"
    return (in_file, "file") if in_file is not None else None


def _is_secret_service(backend: Any) -> bool:
    """Ours, or `keyring`'s own (when its configuration names it)."""
    return isinstance(backend, _SecretService) or (
        type(backend).__module__ == "keyring.backends.SecretService"
    )


# The Secret Service API (freedesktop.org), as `_SecretService` speaks it.
_BUS_NAME = "org.freedesktop.secrets"
_SECRET = "org.freedesktop.Secret."
_SERVICE_PATH = "/org/freedesktop/secrets"
_DEFAULT_COLLECTION = "/org/freedesktop/secrets/aliases/default"
_NO_OBJECT = "/"  # the path that means "none" (no item, no prompt)


class _SecretService:
    """credd's items in the Secret Service, as `keyring`'s Secret Service backend keeps
    them (the same methods, errors, attributes and label), spoken over D-Bus by jeepney.

    Items are stored in the default collection, with attributes `service`, `username`
    and `application` ("Python keyring library", keyring's own); a locked collection or
    item is unlocked through the service's prompt (a dialog on a desktop), and one that
    stays locked is `KeyringLocked`. Every call opens its own connection and closes it:
    the daemon calls from its worker threads, and a connection is not shared.
    """

    name = "SecretService Keyring"
    _APPLICATION = "Python keyring library"

    def __repr__(self) -> str:
        return "_SecretService()"

    @classmethod
    def find(cls) -> _SecretService | None:
        """One when a Secret Service runs on the session bus, or can be started by it; None
        also where jeepney is not installed (it is a dependency on Linux alone)."""
        try:
            from jeepney.bus_messages import message_bus
            from jeepney.io.blocking import Proxy

            with _Conversation() as talk:
                bus = Proxy(message_bus, talk.connection)
                if bus.NameHasOwner(_BUS_NAME)[0] or _BUS_NAME in bus.ListActivatableNames()[0]:
                    return cls()
        except Exception as error:  # no jeepney, no session bus, or none that answers
            log.debug("keyring: no Secret Service: %s", type(error).__name__)
        return None

    def get_password(self, service: str, username: str) -> str | None:
        with _Conversation() as talk:
            collection = talk.unlocked(talk.default_collection())
            for item in talk.search(collection, service, username):
                talk.unlocked(item, "Item")
                secret = talk.call(item, "Item", "GetSecret", "o", talk.session())[0]
                return bytes(secret[2]).decode("utf-8")
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        properties = {
            _SECRET + "Item.Label": ("s", f"Password for '{username}' on '{service}'"),
            _SECRET + "Item.Attributes": (
                "a{ss}",
                {"service": service, "username": username, "application": self._APPLICATION},
            ),
        }
        with _Conversation() as talk:
            collection = talk.unlocked(talk.default_collection())
            secret = (talk.session(), b"", password.encode("utf-8"), "text/plain")
            item, prompt = talk.call(
                collection, "Collection", "CreateItem", "a{sv}(oayays)b", properties, secret, True
            )
            if item == _NO_OBJECT:
                talk.prompt(prompt)

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        with _Conversation() as talk:
            collection = talk.unlocked(talk.default_collection())
            for item in talk.search(collection, service, username):
                talk.prompt(talk.call(item, "Item", "Delete")[0])
                return
        raise PasswordDeleteError("No such password!")

    def usernames(self, service: str) -> frozenset[str]:
        """The users of `service`'s items in every collection, read without unlocking (the
        service shows items' attributes while they are locked)."""
        with _Conversation() as talk:
            unlocked, locked = talk.call(
                _SERVICE_PATH, "Service", "SearchItems", "a{ss}", {"service": service}
            )
            users = {
                talk.property(item, "Item", "Attributes").get("username", "")
                for item in (*unlocked, *locked)
            }
        return frozenset(users) - {""}


class _Conversation:
    """One connection to the session bus, and the Secret Service calls made on it."""

    def __init__(self) -> None:
        from jeepney.io.blocking import open_dbus_connection

        self.connection = open_dbus_connection("SESSION")
        self._session: str | None = None

    def __enter__(self) -> _Conversation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.connection.close()

    def call(
        self, path: str, interface: str, method: str, signature: str | None = None, *args: Any
    ) -> Any:
        """A method of `org.freedesktop.Secret.<interface>` at `path`; its reply's body.
        An error reply raises jeepney's DBusErrorResponse."""
        from jeepney import DBusAddress, new_method_call
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(path, bus_name=_BUS_NAME, interface=_SECRET + interface)
        message = new_method_call(address, method, signature, args)
        return unwrap_msg(self.connection.send_and_get_reply(message))

    def property(self, path: str, interface: str, name: str) -> Any:
        from jeepney import DBusAddress, Properties
        from jeepney.wrappers import unwrap_msg

        address = DBusAddress(path, bus_name=_BUS_NAME, interface=_SECRET + interface)
        reply = self.connection.send_and_get_reply(Properties(address).get(name))
        return unwrap_msg(reply)[0][1]

    def default_collection(self) -> str:
        """The default collection's path (the alias, which the service resolves); one is
        created when there is none (the service asks the user), as keyring does."""
        from jeepney import DBusErrorResponse

        try:
            self.property(_DEFAULT_COLLECTION, "Collection", "Label")
            return _DEFAULT_COLLECTION
        except DBusErrorResponse as error:
            if error.name not in (
                "org.freedesktop.Secret.Error.NoSuchObject",
                "org.freedesktop.DBus.Error.UnknownObject",
                "org.freedesktop.DBus.Error.UnknownMethod",
            ):
                raise
        label = {_SECRET + "Collection.Label": ("s", "Default")}
        collection, prompt = self.call(
            _SERVICE_PATH, "Service", "CreateCollection", "a{sv}s", label, "default"
        )
        if collection == _NO_OBJECT:
            try:
                collection = self.prompt(prompt)
            except Exception:
                # keyring's own error here, which is asked again once: GNOME Keyring
                # now and then reports its default collection missing for an instant.
                from keyring.errors import InitError

                raise InitError("the default collection could not be created") from None
        return str(collection)

    def unlocked(self, path: str, interface: str = "Collection") -> str:
        """`path`, unlocked through the service's prompt if it is locked; `KeyringLocked`
        when it stays locked (the prompt dismissed, or none can be shown)."""
        if self.property(path, interface, "Locked"):
            self.prompt(self.call(_SERVICE_PATH, "Service", "Unlock", "ao", [path])[1])
            if self.property(path, interface, "Locked"):
                from keyring.errors import KeyringLocked

                raise KeyringLocked(f"Failed to unlock the {interface.lower()}!")
        return path

    def search(self, collection: str, service: str, username: str) -> list[str]:
        found: list[str] = self.call(
            collection,
            "Collection",
            "SearchItems",
            "a{ss}",
            {"username": username, "service": service},
        )[0]
        return found

    def session(self) -> str:
        """A session whose secrets cross the bus as they are (`plain`)."""
        if self._session is None:
            self._session = self.call(
                _SERVICE_PATH, "Service", "OpenSession", "sv", "plain", ("s", "")
            )[1]
        return self._session

    def prompt(self, prompt: str) -> Any:
        """Show the service's prompt (none when `prompt` is "/") and wait for the user's
        answer; its result, or `KeyringLocked` when it was dismissed."""
        if prompt == _NO_OBJECT:
            return None
        from jeepney import MatchRule
        from jeepney.bus_messages import message_bus
        from jeepney.io.blocking import Proxy

        rule = MatchRule(
            type="signal", interface=_SECRET + "Prompt", member="Completed", path=prompt
        )
        with self.connection.filter(rule) as completions:
            # The service may send the signal to no one in particular: ask the bus for it.
            Proxy(message_bus, self.connection).AddMatch(rule)
            self.call(prompt, "Prompt", "Prompt", "s", "")
            dismissed, (_, result) = self.connection.recv_until_filtered(completions).body
        if dismissed:
            from keyring.errors import KeyringLocked

            raise KeyringLocked("The prompt was dismissed")
        return result
