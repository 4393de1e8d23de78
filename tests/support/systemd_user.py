"""A private, real `systemd --user` manager for tests, on a machine whose PID 1 is not systemd.

    with systemd_user_manager(account) as manager:
        manager.run("systemctl", "--user", "start", "credd")

`account` is `ROOT` or an unprivileged user (`ensure_account("credd-e2e")`),
as on a desktop: the manager, every unit it starts, and every command
`manager.run` runs are that user's. The manager gets a fresh HOME
(`manager.home`; put units in `~/.config/systemd/user/`) and runtime
directory (`manager.runtime_dir`, its XDG_RUNTIME_DIR), both under
`manager.workdir`, which every user can enter; all of it is removed at exit.

How: `systemctl` and the manager both want a system booted with systemd.
The manager runs in a mount namespace of its own in which a tmpfs on
/run/systemd holds an empty /run/systemd/system, the mark of such a boot; the
host's /run is untouched, and `manager.run` enters that namespace (`nsenter
-m`) before it drops to the account (`setpriv`). Before it starts, the manager
is moved into a cgroup of its own (owned by the account, so it can make its
scopes and slices there). SAFETY: a user manager started in the root cgroup
moves every process of that cgroup, PID 1 included, into its init.scope; the
manager's shell checks /proc/self/cgroup and refuses to start unless the move
happened. `manager.log` has what went wrong before the manager started; the
manager itself logs to the kernel log (`dmesg`): a user manager's "console"
is /dev/console, not its stderr.

Where a manager cannot be had (not root, a missing tool, no mount namespace
or cgroup allowed), `unavailable_reason()` says why and `systemd_user_manager`
raises `Unavailable` with it, so a test can skip with that reason. A manager
that could be started but does not come up is an error, not a skip.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

SYSTEMD = "/usr/lib/systemd/systemd"
TOOLS = ("unshare", "nsenter", "setpriv", "systemctl")
PATH = "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_ROOT = Path("/sys/fs/cgroup")
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0

# Runs inside the new mount namespace, as root: $1 is a colon-separated list of the
# cgroup.procs files to join, $2 the cgroup's name, the rest the manager's command line.
IN_NAMESPACE = r"""
set -eu
procs=$1 cgroup=$2
shift 2
mkdir -p /run/systemd  # an empty directory on the host when missing: nothing mounted there
mount -t tmpfs -o mode=0755 tmpfs /run/systemd
mkdir /run/systemd/system
IFS=:
for f in $procs; do echo $$ > "$f"; done
unset IFS
# Every hierarchy systemd tracks processes in (name=systemd, the unified one) must now
# name our cgroup; otherwise the manager would take over the cgroup we came from.
tracked=$(grep -E '^[0-9]+:(name=systemd)?:' /proc/self/cgroup || true)
elsewhere=$(printf '%s\n' "$tracked" | grep -vE "^[0-9]+:(name=systemd)?:/$cgroup\$" || true)
if [ -z "$tracked" ] || [ -n "$elsewhere" ]; then
  echo "systemd_user: not in cgroup /$cgroup, refusing to start the manager:" >&2
  cat /proc/self/cgroup >&2
  exit 1
fi
exec "$@"
"""


class Unavailable(Exception):
    """No `systemd --user` manager can be had on this machine; the message says why."""


@dataclass(frozen=True)
class Account:
    """Who the manager and its units run as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def of(cls, name: str) -> Account:
        entry = pwd.getpwnam(name)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)


ROOT = Account("root", 0, 0)


def ensure_account(name: str) -> Account:
    """The unprivileged user `name`, made with `useradd` (no password, no login) if absent."""
    try:
        return Account.of(name)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        raise Unavailable(f"no user {name} and no useradd to make one (Debian: passwd)")
    result = subprocess.run(
        [
            "useradd",
            "--user-group",
            "--create-home",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "credd end-to-end tests",
            name,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        return Account.of(name)  # also when another run made it meanwhile
    except KeyError:
        raise RuntimeError(
            f"useradd {name} exited {result.returncode}: {result.stderr.strip()}"
        ) from None


def unavailable_reason() -> str | None:
    """Why no manager can be started here, or None when one can be tried."""
    if os.geteuid() != 0:
        return "a private systemd --user manager needs root (a mount namespace and a cgroup)"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not os.access(SYSTEMD, os.X_OK):
        missing.append(SYSTEMD)
    if missing:
        return f"missing {', '.join(missing)} (Debian: systemd, util-linux)"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return f"no mount namespace allowed here: {probe.stderr.strip()}"
    return None


def _cgroup_hierarchies() -> list[Path]:
    """The hierarchies systemd tracks processes in: v1 name=systemd and/or the unified one."""
    if (CGROUP_ROOT / "cgroup.controllers").is_file():
        return [CGROUP_ROOT]  # the unified hierarchy alone
    return [h for h in (CGROUP_ROOT / "systemd", CGROUP_ROOT / "unified") if h.is_dir()]


def _make_cgroups(name: str, account: Account) -> list[Path]:
    """A cgroup `name` in every hierarchy systemd uses, owned by `account`."""
    made: list[Path] = []
    try:
        for hierarchy in _cgroup_hierarchies():
            cgroup = hierarchy / name
            cgroup.mkdir()
            made.append(cgroup)
            for path in (cgroup, *cgroup.iterdir()):
                os.chown(path, account.uid, account.gid)
    except OSError as exc:
        _remove_cgroups(made)
        raise Unavailable(f"cannot make a cgroup of its own for the manager: {exc}") from exc
    if not made:
        raise Unavailable(f"no cgroup hierarchy systemd could use under {CGROUP_ROOT}")
    return made


def _pids_in(cgroup: Path) -> set[int]:
    pids: set[int] = set()
    for directory, _, files in os.walk(cgroup):
        if "cgroup.procs" in files:
            with suppress(OSError):
                text = (Path(directory) / "cgroup.procs").read_text()
                pids.update(int(p) for p in text.split())
    return pids


def _remove_cgroups(cgroups: list[Path]) -> None:
    """Kill what is left in our cgroups (all of it started by the manager), remove them."""
    for _ in range(50):
        left = set().union(*(_pids_in(c) for c in cgroups if c.is_dir()))
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for cgroup in cgroups:
            for directory, _, _ in os.walk(cgroup, topdown=False):
                with suppress(OSError):
                    os.rmdir(directory)
        if not any(c.exists() for c in cgroups):
            return
        time.sleep(0.1)


def _drop_to(account: Account) -> list[str]:
    """The command prefix that runs the rest as `account` (nothing for root)."""
    if account.uid == 0:
        return []
    return ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups"]


def _login_env(account: Account, home: Path, runtime_dir: Path) -> dict[str, str]:
    """What a login of `account` would have: no more (no DBUS_SESSION_BUS_ADDRESS)."""
    return {
        "PATH": PATH,
        "HOME": str(home),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "USER": account.name,
        "LOGNAME": account.name,
        "LANG": "C.UTF-8",
    }


@dataclass
class UserManager:
    """A running manager: who it runs as, its HOME and runtime directory, how to reach it."""

    account: Account
    process: subprocess.Popen[bytes]
    workdir: Path
    home: Path
    runtime_dir: Path
    log: Path
    cgroups: list[Path]

    @property
    def pid(self) -> int:
        return self.process.pid

    def env(self) -> dict[str, str]:
        """The environment of commands run beside the manager, and of the manager itself."""
        return _login_env(self.account, self.home, self.runtime_dir)

    def command(self, *argv: str, env: Mapping[str, str] | None = None) -> list[str]:
        """`argv` in the manager's mount namespace, as its account, with `env()` (+ `env`)."""
        variables = [f"{k}={v}" for k, v in {**self.env(), **(env or {})}.items()]
        prefix = ["nsenter", "-t", str(self.pid), "-m", *_drop_to(self.account)]
        return [*prefix, "env", "-i", *variables, *argv]

    def run(
        self, *argv: str, timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` beside the manager (see `command`); never raises on its exit status."""
        return subprocess.run(
            self.command(*argv, env=env),
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def systemctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, timeout=timeout)

    def readable_copy(self, *files: Path) -> Path:
        """Copies of `files` in a directory of `workdir` the account can read; that directory.

        For scripts the account runs: the work tree may be closed to it (under /root).
        """
        target = self.workdir / "files"
        target.mkdir(mode=0o755, exist_ok=True)
        for path in files:
            shutil.copyfile(path, target / path.name)
            (target / path.name).chmod(0o644)
        return target

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-size:]
        except OSError as exc:
            return f"(no manager log: {exc})"

    def _wait_running(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the systemd --user manager exited {self.process.returncode} at start:\n"
                    + self.log_tail()
                )
            state = self.systemctl("is-system-running", timeout=10).stdout.strip()
            if state == "running":
                return
            time.sleep(0.05)
        failed = self.systemctl("--failed", timeout=10).stdout
        raise RuntimeError(
            f"the systemd --user manager did not come up in {timeout:.0f}s "
            f"(state: {state or 'none'}; its own log is in dmesg):\n{failed}\n{self.log_tail()}"
        )

    def _stop(self) -> None:
        if self.process.poll() is None:
            with suppress(subprocess.TimeoutExpired):
                self.systemctl("exit", timeout=EXIT_TIMEOUT)
            try:
                self.process.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()


@contextmanager
def systemd_user_manager(
    account: Account = ROOT, *, start_timeout: float = START_TIMEOUT
) -> Iterator[UserManager]:
    """Start a private `systemd --user` manager as `account`; stop it and clean up at exit.

    Raises `Unavailable` where no manager can be had here (see the module's doc).
    """
    reason = unavailable_reason()
    if reason is not None:
        raise Unavailable(reason)
    workdir = Path(tempfile.mkdtemp(prefix="credd-sdu."))
    home, runtime_dir, log = workdir / "home", workdir / "runtime", workdir / "manager.log"
    cgroups: list[Path] = []
    manager: UserManager | None = None
    try:
        workdir.chmod(0o755)  # the account must reach its HOME and runtime directory inside
        for directory in (home, runtime_dir):
            directory.mkdir(mode=0o700)
            os.chown(directory, account.uid, account.gid)
        (home / ".config" / "systemd" / "user").mkdir(parents=True)
        for config_dir, _, _ in os.walk(home / ".config"):
            os.chown(config_dir, account.uid, account.gid)
        cgroups = _make_cgroups(f"credd-sdu-{os.getpid()}-{uuid.uuid4().hex[:8]}", account)
        variables = [f"{k}={v}" for k, v in _login_env(account, home, runtime_dir).items()]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    IN_NAMESPACE,
                    "systemd_user",
                    ":".join(str(c / "cgroup.procs") for c in cgroups),
                    cgroups[0].name,
                    *_drop_to(account),
                    "env",
                    "-i",
                    *variables,
                    SYSTEMD,
                    "--user",
                    # A user manager sends "console" to /dev/console, not to stderr.
                    "--log-target=kmsg",
                    "--log-color=no",
                    "--log-level=info",
                ],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        manager = UserManager(account, process, workdir, home, runtime_dir, log, cgroups)
        manager._wait_running(start_timeout)
        yield manager
    finally:
        if manager is not None:
            manager._stop()
        _remove_cgroups(cgroups)
        shutil.rmtree(workdir, ignore_errors=True)
