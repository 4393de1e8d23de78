"""credctl: the control client. Standard library and credd's light modules only.

It must start in a few tens of milliseconds, so it never imports boto3, botocore,
apscheduler or yaml (a test checks `sys.modules`). Errors are one line on stderr,
prefixed `credctl: error:`; exit statuses follow SPEC.md (0 ok, 1 AWS said no,
2 bad input, 3 credd not running).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from credd import __version__, paths, protocol
from credd.client import Client
from credd.credentials import format_relative, parse_utc
from credd.errors import BadInputError, CreddError

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~50 ms start
# (bench/RESULTS.md #2). mypy treats any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

_COLOURS = {
    "fresh": "32",
    "refreshing": "36",
    "awaiting-code": "33",
    "expired": "31",
    "error": "31;1",
    "pending": "2",
}


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized to the terminal without importing `shutil`.

    argparse builds a formatter for every argument added, and the stock one asks
    `shutil` for the width: importing it was ~4 ms of credctl's start (bench/RESULTS.md #2).
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) using `_Formatter`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(**kwargs)


def _terminal_columns() -> int:
    """$COLUMNS, else the terminal's width, else 80: what `shutil.get_terminal_size` says."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="credctl", description="Control a running credd (AWS MFA session keeper)."
    )
    parser.add_argument("--version", action="version", version=f"credctl {__version__}")
    parser.add_argument("--socket", type=Path, help="control socket (default: $CREDD_SOCKET)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_ArgumentParser
    )

    token = sub.add_parser("token", help="feed a 6-digit MFA code")
    token.add_argument(
        "code", nargs="?", help="the code (asked for, or read from stdin, if left out)"
    )
    token.add_argument("--profile", help="the profile the code is for")

    status = sub.add_parser("status", help="every profile's state")
    status.add_argument("--json", action="store_true", help="one JSON object, for scripts")
    status.add_argument("--short", action="store_true", help="one line, for shell prompts")

    refresh = sub.add_parser("refresh", help="renew now")
    refresh.add_argument("profiles", nargs="*", metavar="PROFILE")

    sub.add_parser("reload", help="re-read the policy (as SIGHUP)")
    sub.add_parser("prompt", help="stay attached and ask for each code as it is needed")

    process = sub.add_parser(
        "credential-process", help="AWS credential_process JSON from the daemon's memory"
    )
    process.add_argument("profile")

    imp = sub.add_parser("import", help="import the AWS console's access-key CSV")
    imp.add_argument("--csv", type=Path, required=True, metavar="FILE")
    imp.add_argument("--file", type=Path, metavar="CREDENTIALS", help="credentials file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `credctl` console script."""
    args = _parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    client = Client(args.socket or paths.socket_path())
    try:
        return _dispatch(args, client, out)
    except KeyboardInterrupt:
        return 130 if args.command != "prompt" else 0
    except CreddError as error:
        if args.debug:
            raise
        err.write(f"credctl: error: {_one_line(error.message)}\n")
        return error.exit_status


def _dispatch(args: argparse.Namespace, client: Client, out: TextIO) -> int:
    command: str = args.command
    if command == "token":
        return _token(client, out, args.code, args.profile)
    if command == "status":
        return _status(client, out, as_json=args.json, short=args.short)
    if command == "refresh":
        return _refresh(client, out, args.profiles)
    if command == "reload":
        result = client.request("reload")
        out.write(f"policy reloaded: {result['profiles']} profiles\n")
        for warning in result.get("warnings", []):
            out.write(f"warning: {warning}\n")
        return 0
    if command == "prompt":
        return _prompt(client, out)
    if command == "credential-process":
        out.write(json.dumps(client.request("credential-process", profile=args.profile)) + "\n")
        return 0
    if command == "import":
        return _import(out, args.csv, args.file)
    raise BadInputError(f"unknown command {command}")


def _read_code(code: str | None) -> str:
    if code is None:
        if sys.stdin.isatty():
            import getpass  # only here: `credctl token CODE` must start fast

            code = getpass.getpass("MFA code: ")
        else:
            code = sys.stdin.readline()
        code = code.strip()
    return protocol.validate_code(code)


def _token(client: Client, out: TextIO, code: str | None, profile: str | None) -> int:
    result = client.request("token", code=_read_code(code), profile=profile)
    out.write(f"{result['profile']} renewed; {_expiry_phrase(result.get('expires_at'))}\n")
    if result.get("waiting"):
        out.write(f"still awaiting a code: {', '.join(result['waiting'])}\n")
    return 0


def _expiry_phrase(expires_at: str | None, now: datetime | None = None) -> str:
    if not expires_at:
        return "expiry unknown"
    now = now or datetime.now(UTC)
    when = parse_utc(expires_at)
    if when <= now:
        return f"expired {expires_at} ({format_relative(now - when)} ago)"
    return f"expires {expires_at} (in {format_relative(when - now)})"


def _status(client: Client, out: TextIO, *, as_json: bool, short: bool) -> int:
    status = client.request("status")
    if as_json:
        out.write(json.dumps(status, indent=2) + "\n")
        return 0
    now = datetime.now(UTC)
    if short:
        out.write(short_status(status["profiles"], now) + "\n")
        return 0
    out.write(status_table(status["profiles"], now, colour=_use_colour(out)))
    return 0


def short_status(profiles: list[dict[str, Any]], now: datetime) -> str:
    """One line for a shell prompt: the first profile's state and time left, plus what waits."""
    if not profiles:
        return "credd: no profiles"
    parts = []
    for profile in profiles:
        if profile["state"] == "fresh" and profile.get("expires_at"):
            left = format_relative(parse_utc(profile["expires_at"]) - now)
            parts.append(f"{profile['name']} {left}")
        else:
            parts.append(f"{profile['name']} {profile['state']}")
    return " | ".join(parts)


def status_table(profiles: list[dict[str, Any]], now: datetime, *, colour: bool) -> str:
    """The aligned table `credctl status` prints for people."""
    headers = ["PROFILE", "KIND", "STATE", "EXPIRES", "NEXT REFRESH", "LAST ERROR"]
    rows = []
    for p in profiles:
        expires = "-"
        if p.get("expires_at"):
            when = parse_utc(p["expires_at"])
            rel = (
                f"in {format_relative(when - now)}"
                if when > now
                else f"{format_relative(now - when)} ago"
            )
            expires = f"{when:%Y-%m-%d %H:%M}Z ({rel})"
        refresh = "-"
        if p.get("next_refresh_at"):
            refresh = f"in {format_relative(parse_utc(p['next_refresh_at']) - now)}"
        rows.append(
            [
                p["name"],
                p["kind"],
                p["state"],
                expires,
                refresh,
                _one_line(p.get("last_error") or "-"),
            ]
        )
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = []
    for index, row in enumerate([headers, *rows]):
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        if colour and index > 0:
            code = _COLOURS.get(row[2], "0")
            cells[2] = f"\x1b[{code}m{cells[2]}\x1b[0m"
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _use_colour(out: TextIO) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ


def _refresh(client: Client, out: TextIO, profiles: list[str]) -> int:
    result = client.request("refresh", profiles=profiles)
    for name in result["renewed"]:
        out.write(f"{name} renewed\n")
    for name in result["awaiting_code"]:
        out.write(f"{name} is awaiting a code: `credctl token CODE --profile {name}`\n")
    for failed in result["failed"]:
        out.write(f"{failed['profile']} not renewed ({failed['state']}): {failed['error']}\n")
    if not (result["renewed"] or result["awaiting_code"] or result["failed"]):
        out.write("nothing to renew\n")
    return 1 if result["failed"] else 0


def _prompt(client: Client, out: TextIO) -> int:
    """Stay attached: ask for a code each time one is needed, until Ctrl-C."""
    pending: dict[str, dict[str, Any]] = {}
    asking: str | None = None
    events = client.subscribe()
    out.write("credctl prompt: waiting for credd to need a code (Ctrl-C to leave)\n")
    out.flush()
    stdin_open = True
    while True:
        if asking is None and pending:
            asking = next(iter(pending))
            event = pending[asking]
            out.write(f"\n{event.get('message') or asking}\nMFA code for {asking}: ")
            out.flush()
        watched: list[Any] = [events.fileno()]
        if stdin_open and asking is not None:
            watched.append(sys.stdin)
        # Events that came with the subscription's acknowledgement are handled at once.
        ready, _, _ = select.select(watched, [], [], 0 if events.has_events else None)
        if events.has_events or events.fileno() in ready:
            for event in events.read():
                kind = event.get("event")
                name = event.get("profile")
                if kind == "shutdown":
                    out.write("\ncredd stopped\n")
                    return 0
                if kind == "code-needed" and isinstance(name, str):
                    pending.setdefault(name, event)
                elif kind == "code-resolved" and name in pending:
                    pending.pop(name)
                    if asking == name:
                        out.write(f"\n{name} renewed ({_expiry_phrase(event.get('expires_at'))})\n")
                        asking = None
            if events.closed:
                out.write("\ncredd closed the connection\n")
                return 0
        if sys.stdin in ready and asking is not None:
            line = sys.stdin.readline()
            if not line:
                stdin_open = False
                continue
            asking = _answer(client, out, asking, line.strip(), pending)


def _answer(
    client: Client, out: TextIO, name: str, code: str, pending: dict[str, dict[str, Any]]
) -> str | None:
    """Feed one typed code; return the profile still being asked for, if any."""
    try:
        result = client.request("token", code=protocol.validate_code(code), profile=name)
    except CreddError as error:
        out.write(f"not accepted: {_one_line(error.message)}\nMFA code for {name}: ")
        out.flush()
        return name
    pending.pop(name, None)
    out.write(f"{name} renewed; {_expiry_phrase(result.get('expires_at'))}\n")
    out.flush()
    return None


def _import(out: TextIO, csv_path: Path, target: Path | None) -> int:
    from credd.csvimport import import_csv
    from credd.writer import CredentialsWriter

    credentials = target or paths.credentials_path()
    names = import_csv(csv_path, CredentialsWriter(credentials))
    out.write(f"imported {len(names)} profile(s) into {credentials}: {', '.join(names)}\n")
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())
