"""`credd install systemd|launchd`: write the user unit or the LaunchAgent.

The templates ship inside the package (`credd/units/`) and are the one source
of truth; `systemd/credd.service` and `launchd/com.credd.agent.plist` in the
repository are examples rendered from them (a test keeps them in step).

The unit runs the interpreter of the installation that ran `credd install`
(`sys.executable`), as it is: a venv's or pipx's `bin/python` is a symlink
whose target lacks the venv's packages, so it is never resolved.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO
from xml.sax.saxutils import escape as xml_escape

from credd.files.atomic import atomic_write, make_directories
from credd.paths import policy_path

SYSTEMD_UNIT = "credd.service"
LAUNCHD_LABEL = "com.credd.agent"
KINDS = ("systemd", "launchd")
# Readable by all, as service files are; writable only by the user (see _write).
SERVICE_FILE_MODE = 0o644
SERVICE_DIR_MODE = 0o755

# A program path systemd reads as it is in ExecStart, with no quoting.
_SYSTEMD_BARE_WORD = re.compile(r"[A-Za-z0-9_@%$+=:,./-]+")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Rendered:
    """A service file ready to write: where it goes and what it holds."""

    kind: str
    path: Path
    text: str


def _template(name: str) -> str:
    return resources.files("credd").joinpath("units", name).read_text(encoding="utf-8")


def _systemd_executable(path: str) -> str:
    """`path` as the program of an ExecStart line: specifiers kept literal, quoted if needed.

    systemd expands no $VARIABLE in the program itself, so `$` stays as it is.
    """
    literal = path.replace("%", "%%")
    if _SYSTEMD_BARE_WORD.fullmatch(path):
        return literal
    return '"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd(python: str) -> str:
    """The user unit, running `python -m credd run`."""
    return _template("credd.service").replace("{python}", _systemd_executable(python))


def render_launchd(python: str, home: str) -> str:
    """The LaunchAgent plist, running `python -m credd run`, logging under `home`."""
    return (
        _template("credd.plist")
        .replace("{python}", xml_escape(python))
        .replace("{home}", xml_escape(home.rstrip("/")))
    )


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def systemd_unit_path(env: Mapping[str, str]) -> Path:
    """`$XDG_CONFIG_HOME/systemd/user/credd.service` (a relative XDG_CONFIG_HOME is ignored)."""
    config = env.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else _home(env) / ".config"
    return base / "systemd" / "user" / SYSTEMD_UNIT


def launchd_plist_path(env: Mapping[str, str]) -> Path:
    """`~/Library/LaunchAgents/com.credd.agent.plist`."""
    return _home(env) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_log_dir(env: Mapping[str, str]) -> Path:
    """`~/Library/Logs/credd`, where the LaunchAgent's output goes."""
    return _home(env) / "Library" / "Logs" / "credd"


def render(kind: str, *, env: Mapping[str, str], python: str) -> Rendered:
    """The file `credd install <kind>` writes. ValueError for a bad kind or interpreter path."""
    if kind not in KINDS:
        raise ValueError(f"unknown service manager {kind!r} (expected one of: {', '.join(KINDS)})")
    if not os.path.isabs(python) or _CONTROL_CHARS.search(python):
        raise ValueError(f"the interpreter path must be absolute and printable, not {python!r}")
    if kind == "systemd":
        return Rendered(kind, systemd_unit_path(env), render_systemd(python))
    home = str(_home(env))
    if not os.path.isabs(home) or _CONTROL_CHARS.search(home):
        raise ValueError(f"HOME must be absolute and printable, not {home!r}")
    return Rendered(kind, launchd_plist_path(env), render_launchd(python, home))


def _write(path: Path, text: str) -> None:
    """Replace `path` atomically (through a symlink to its target), mode 0644.

    The file says which program runs as the user: no one else may write it, nor
    the directories made for it (0755 whatever the umask; existing ones are left
    as they are). launchd refuses a plist that is group- or world-writable.
    """
    target = Path(os.path.realpath(path))
    make_directories(target.parent, SERVICE_DIR_MODE)
    atomic_write(target, text.encode("utf-8"), mode=SERVICE_FILE_MODE)


def _next_steps(rendered: Rendered, env: Mapping[str, str], *, replaced: bool) -> list[str]:
    if rendered.kind == "systemd":
        start = "restart credd" if replaced else "enable --now credd"
        steps = [
            "Next:",
            f"  systemctl --user daemon-reload && systemctl --user {start}",
            "  systemctl --user status credd      # its status line names profiles awaiting a code",
            "  journalctl --user -u credd -f      # its log",
        ]
        if env.get("XDG_CONFIG_HOME") and rendered.path.parent != (
            _home(env) / ".config" / "systemd" / "user"
        ):
            steps.append(
                "  (systemd looks in $XDG_CONFIG_HOME/systemd/user only if its own environment"
                " sets XDG_CONFIG_HOME: check `systemctl --user show-environment`)"
            )
    else:
        plist = shlex.quote(str(rendered.path))
        domain = 'gui/"$(id -u)"'
        load = f"launchctl bootstrap {domain} {plist}"
        if replaced:
            load = f"launchctl bootout {domain}/{LAUNCHD_LABEL}; {load}"
        log_file = shlex.quote(str(launchd_log_dir(env) / "credd.log"))
        steps = [
            "Next:",
            f"  {load}",
            f"  launchctl kickstart -k {domain}/{LAUNCHD_LABEL}   # restart it later",
            f"  tail -f {log_file}   # its log",
        ]
    steps.append("  credctl status")
    policy = Path(policy_path(env))
    if not policy.exists():
        steps.append(f"(no policy at {policy} yet: run `credd init` first)")
    return steps


# sys.platform's names, as people write them.
_NAMES = {"linux": "Linux", "darwin": "macOS"}


def _other_systems_manager(kind: str, platform: str) -> str | None:
    """What to say when `kind` is not the service manager of this system, else None."""
    if kind == "launchd" and platform != "darwin":
        return (
            "launchd is macOS's service manager and this system is "
            f"{_NAMES.get(platform, platform)}: nothing here will run the LaunchAgent "
            "(on Linux, `credd install systemd`)"
        )
    if kind == "systemd" and platform == "darwin":
        return (
            "systemd is Linux's service manager and this system is macOS: nothing here will "
            "run the unit (on macOS, `credd install launchd`)"
        )
    return None


def install(
    kind: str,
    *,
    dry_run: bool,
    force: bool,
    env: Mapping[str, str],
    out: TextIO,
    python: str = sys.executable,
    err: TextIO | None = None,
    platform: str = sys.platform,
) -> int:
    """Write the user unit (`systemd`) or LaunchAgent (`launchd`) and print the next commands.

    With `dry_run`, print the file to `out` (so that it can be piped to `diff`), and what
    it would write and the next commands to `err`; write nothing. A service manager that
    is not this system's (`platform`, as `sys.platform`) is named in a note. A file that
    exists and differs is replaced only with `force`. Returns the exit status:
    0 written or already current, 1 refused to overwrite (or could not
    write), 2 bad kind or interpreter path. Messages go to `err` (stderr).
    """
    err = err if err is not None else sys.stderr
    try:
        rendered = render(kind, env=env, python=python)
    except ValueError as exc:
        print(f"credd: error: {exc}", file=err)
        return 2
    if not os.path.exists(python):
        print(f"credd: warning: {python} does not exist; the service will not start", file=err)
    mismatch = _other_systems_manager(kind, platform)
    if mismatch:
        print(f"credd: note: {mismatch}", file=err)

    if dry_run:
        out.write(rendered.text)
        out.flush()
        print(f"credd: dry run, would write {rendered.path}; nothing was written", file=err)
        steps = _next_steps(rendered, env, replaced=rendered.path.exists())
        print("\n".join(["Then:", *steps[1:]]), file=err)
        return 0

    path = rendered.path
    replaced = False
    try:
        if path.exists():
            if path.read_text(encoding="utf-8") == rendered.text:
                print(f"{path} is already installed and current", file=out)
            elif not force:
                print(
                    f"credd: error: {path} exists and differs from what credd would write;"
                    f" see `credd install {kind} --dry-run | diff {shlex.quote(str(path))} -`,"
                    " then re-run with --force to replace it",
                    file=err,
                )
                return 1
            else:
                _write(path, rendered.text)
                replaced = True
                print(f"replaced {path}", file=out)
        else:
            _write(path, rendered.text)
            print(f"wrote {path}", file=out)
        if kind == "launchd":
            # launchd does not create the directories of StandardOutPath/StandardErrorPath.
            log_dir = launchd_log_dir(env)
            make_directories(log_dir.parent, SERVICE_DIR_MODE)
            make_directories(log_dir, 0o700)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"credd: error: cannot install {path}: {exc}", file=err)
        return 1

    print("\n".join(_next_steps(rendered, env, replaced=replaced)), file=out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m credd.commands.install systemd|launchd [--dry-run] [--force] [--python PATH]`."""
    parser = argparse.ArgumentParser(
        prog="credd install",
        description="Write the credd user unit (systemd) or LaunchAgent (launchd).",
    )
    parser.add_argument("kind", help="systemd or launchd")
    parser.add_argument("--dry-run", action="store_true", help="print the file, write nothing")
    parser.add_argument("--force", action="store_true", help="replace a file that differs")
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter the service runs (default: this one, %(default)s)",
    )
    args = parser.parse_args(argv)
    return install(
        args.kind,
        dry_run=args.dry_run,
        force=args.force,
        env=os.environ,
        out=sys.stdout,
        python=args.python,
    )


if __name__ == "__main__":
    sys.exit(main())
