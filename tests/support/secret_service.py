"""A real Secret Service for the tests: GNOME Keyring on a D-Bus session of its own.

`dbus-run-session` starts a private session bus; inside it `gnome-keyring-daemon`
runs in the foreground with only its secrets component, its files under a
directory of the test's (SPEC.md's known traps give the recipe); its login
collection is then created with a known password and made the default. A process
reaches it through `env` (`DBUS_SESSION_BUS_ADDRESS`); nothing of the machine's
own session is used.

`lock()` locks the login collection through the Secret Service API (`Lock`), as
a screen locker does; `unlock()` unlocks it with the password through GNOME
Keyring's own internal interface, as its PAM module does, since the standard
`Unlock` would show a prompt that a headless machine cannot answer (it is
dismissed: `keyring` then reports the collection locked).

The Debian packages are `dbus` and `gnome-keyring` (`make test` installs them).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import DBusConnection, open_dbus_connection

PASSWORD = b"credd-test-keyring"
_SECRETS = "org.freedesktop.secrets"
_SERVICE = DBusAddress(
    "/org/freedesktop/secrets", bus_name=_SECRETS, interface="org.freedesktop.Secret.Service"
)
_INTERNAL = DBusAddress(
    "/org/freedesktop/secrets",
    bus_name=_SECRETS,
    interface="org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface",
)

_SCRIPT = """
gnome-keyring-daemon --foreground --components=secrets </dev/null >"$KEYRING_LOG" 2>&1 &
echo "$DBUS_SESSION_BUS_ADDRESS"
wait $!
echo "gnome-keyring-daemon ended with status $?" >>"$KEYRING_LOG"
"""
# Now and then the private bus is gone before the keyring answers: its socket no longer
# exists (seen once in a whole `make test`, and once in about 600 starts on a loaded
# 2-core machine). When dbus-run-session has ended by then, that start is abandoned and
# the next is made in a fresh directory; what the keyring daemon said is kept in its
# gnome-keyring.log, for the error should every start end so.
_STARTS = 3


def missing_tools() -> list[str]:
    """The commands this needs that the machine lacks (`make test` installs them)."""
    return [t for t in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(t) is None]


class SecretService:
    """A running GNOME Keyring on a private session bus."""

    def __init__(self, address: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.address = address
        self._process = process
        self._log = log

    def ended(self) -> bool:
        """Whether the bus, and the keyring daemon with it, has ended."""
        return self._process.poll() is not None

    def log(self) -> str:
        """What the keyring daemon wrote, and how it ended if it has."""
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return ""

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach it."""
        return {"DBUS_SESSION_BUS_ADDRESS": self.address}

    def _connect(self) -> DBusConnection:
        return open_dbus_connection(bus=self.address)

    def _collection(self, connection: DBusConnection) -> str:
        # GNOME Keyring now and then answers "/" (no such collection) for an instant and
        # the right path on the next call: ask again for up to 2 s before calling it gone.
        deadline = time.monotonic() + 2
        while True:
            reply = connection.send_and_get_reply(
                new_method_call(_SERVICE, "ReadAlias", "s", ("default",))
            )
            path: str = reply.body[0]
            if path != "/" or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert path != "/", "the Secret Service has no default collection"
        return path

    def lock(self) -> None:
        """Lock the default (login) collection, as a screen locker would."""
        with contextlib.closing(self._connect()) as connection:
            collection = self._collection(connection)
            connection.send_and_get_reply(new_method_call(_SERVICE, "Lock", "ao", ([collection],)))
        assert self.is_locked()

    def unlock(self) -> None:
        """Unlock it with its password, with no prompt."""
        with contextlib.closing(self._connect()) as connection:
            collection = self._collection(connection)
            reply = connection.send_and_get_reply(
                new_method_call(_SERVICE, "OpenSession", "sv", ("plain", ("s", "")))
            )
            session = reply.body[1]
            connection.send_and_get_reply(
                new_method_call(
                    _INTERNAL,
                    "UnlockWithMasterPassword",
                    "o(oayays)",
                    (collection, (session, b"", PASSWORD, "text/plain")),
                )
            )
        assert not self.is_locked()

    def is_locked(self) -> bool:
        """Whether the default collection is locked."""
        with contextlib.closing(self._connect()) as connection:
            collection = self._collection(connection)
            props = DBusAddress(
                collection, bus_name=_SECRETS, interface="org.freedesktop.DBus.Properties"
            )
            reply = connection.send_and_get_reply(
                new_method_call(props, "Get", "ss", ("org.freedesktop.Secret.Collection", "Locked"))
            )
            return bool(reply.body[0][1])

    def secrets(self, service: str = "credd") -> dict[str, str]:
        """Every item of `service`: user -> password (unlocks first)."""
        import secretstorage

        connection = self._connect()
        try:
            return {
                item.get_attributes()["username"]: item.get_secret().decode()
                for item in secretstorage.search_items(connection, {"service": service})
            }
        finally:
            connection.close()

    def items(self, service: str = "credd") -> dict[str, tuple[str, dict[str, str]]]:
        """Every item of `service`: user -> (label, attributes), read without unlocking."""
        import secretstorage

        with contextlib.closing(self._connect()) as connection:
            return {
                item.get_attributes()["username"]: (item.get_label(), item.get_attributes())
                for item in secretstorage.search_items(connection, {"service": service})
            }

    def remove_default_collection(self) -> None:
        """Delete the default collection (and its items): the keyring has none."""
        with contextlib.closing(self._connect()) as connection:
            collection = self._collection(connection)
            address = DBusAddress(
                collection, bus_name=_SECRETS, interface="org.freedesktop.Secret.Collection"
            )
            reply = connection.send_and_get_reply(new_method_call(address, "Delete"))
            assert reply.body == ("/",), "deleting the collection asked for a prompt"
            reply = connection.send_and_get_reply(
                new_method_call(_SERVICE, "ReadAlias", "s", ("default",))
            )
            assert reply.body == ("/",)

    def clear(self, service: str = "credd") -> None:
        """Delete every item of `service` (between tests), unlocking first."""
        if self.is_locked():
            self.unlock()
        import secretstorage

        connection = self._connect()
        try:
            for item in secretstorage.search_items(connection, {"service": service}):
                item.delete()
        finally:
            connection.close()

    def stop(self) -> None:
        """End the bus and the keyring daemon (their own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


class _EndedWhileStarting(Exception):
    """The bus and the keyring daemon ended before the keyring answered."""


@contextlib.contextmanager
def secret_service(root: Path, timeout: float = 20.0) -> Iterator[SecretService]:
    """Start GNOME Keyring on a session bus of its own, its files under `root`."""
    ended: list[str] = []
    for attempt in range(1, _STARTS + 1):
        service = _start(root / f"start-{attempt}")
        try:
            _wait_for_name(service, timeout)
        except _EndedWhileStarting as error:
            service.stop()
            ended.append(str(error))
            continue
        except BaseException:
            service.stop()
            raise
        try:
            yield service
        finally:
            service.stop()
        return
    raise RuntimeError(f"GNOME Keyring ended while starting, {_STARTS} times: {ended}")


def _start(root: Path) -> SecretService:
    home = root / "home"
    runtime = root / "run"
    home.mkdir(parents=True, exist_ok=True)
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "KEYRING_LOG": str(root / "gnome-keyring.log"),
    }
    process = subprocess.Popen(
        ["dbus-run-session", "--", "sh", "-c", _SCRIPT],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    address = process.stdout.readline().decode().strip()
    service = SecretService(address, process, root / "gnome-keyring.log")
    if not address:
        service.stop()
        raise AssertionError("dbus-run-session printed no bus address")
    return service


def _wait_for_name(service: SecretService, timeout: float) -> None:
    """Until the keyring answers on the bus; then give it its login collection, unlocked.

    The collection is made here through GNOME Keyring's internal interface with the
    known password (and made the default), rather than by `--unlock` on its standard
    input, which left the daemon now and then with no default collection at all.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with contextlib.closing(service._connect()) as connection:
                reply = connection.send_and_get_reply(
                    new_method_call(_SERVICE, "ReadAlias", "s", ("default",))
                )
                if reply.body[0] == "/":
                    _create_login_collection(connection)
            service.is_locked()
            return
        except Exception as error:
            if service.ended():
                raise _EndedWhileStarting(f"{error!r}; {service.log()!r}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _create_login_collection(connection: DBusConnection) -> None:
    reply = connection.send_and_get_reply(
        new_method_call(_SERVICE, "OpenSession", "sv", ("plain", ("s", "")))
    )
    session = reply.body[1]
    reply = connection.send_and_get_reply(
        new_method_call(
            _INTERNAL,
            "CreateWithMasterPassword",
            "a{sv}(oayays)",
            (
                {"org.freedesktop.Secret.Collection.Label": ("s", "login")},
                (session, b"", PASSWORD, "text/plain"),
            ),
        )
    )
    collection = reply.body[0]
    connection.send_and_get_reply(
        new_method_call(_SERVICE, "SetAlias", "so", ("default", collection))
    )
