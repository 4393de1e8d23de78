"""credctl: the control client. Standard library and credd's light modules only.

It is judged by its start-up: `credctl token CODE` against the AWS CLI's whole run,
`credctl status` against a bare `python3 -c pass` (issue 6, bench/). So it never
imports boto3, botocore, apscheduler or yaml, and on its common paths not argparse,
json, re, enum, socket, pathlib or typing either: each costs milliseconds
of a ~25 ms start (tests/ctl/test_ctl.py checks `sys.modules`). Errors are one line on
stderr, prefixed `credctl: error:`; exit statuses follow SPEC.md (0 ok, 1 AWS said
no, 2 bad input, 3 credd not running or not to be trusted), as credd/errors.py maps them.

Its command line is the table in credd/ctl/grammar.py: `credd.cmdline.fast_parse` reads
the everyday lines from it, and argparse (credd.cmdparser), built from the same table,
everything else.
"""

from __future__ import annotations

import os
import sys
import time

from credd import paths, protocol
from credd.cmdline import fast_parse
from credd.ctl.client import Client
from credd.ctl.grammar import CREDCTL
from credd.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_READER_GONE,
    BadInputError,
    CreddError,
    Fault,
)
from credd.timetext import format_long, format_relative, utc_seconds

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~25 ms start
# (bench/RESULTS.md #2). mypy treats any `TYPE_CHECKING` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, NoReturn, TextIO

_COLOURS = {
    "fresh": "32",
    "refreshing": "36",
    "awaiting-code": "33",
    "expired": "31",
    "error": "31;1",
    "pending": "2",
}

# What `status --short` names, the most pressing first: the states that need the person.
_NEEDS_YOU = ("awaiting-code", "error", "expired")
# How many of those `status --short` names before it counts the rest.
_SHORT_NAMES = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `credctl` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = fast_parse(CREDCTL, words)
    if args is None:
        from credd.cmdparser import parse

        args = parse(CREDCTL, words)
    err = sys.stderr
    try:
        return _dispatch(args, sys.stdout)
    except BrokenPipeError:
        # The reader left first (`credctl status --json | head -1`): nothing is wrong, and
        # there is no one to tell; end quietly, as a tool that SIGPIPE ends.
        return EXIT_READER_GONE
    except KeyboardInterrupt:
        # End the line a question was left on: the shell's prompt must start on its own.
        if args["command"] == "prompt":
            sys.stdout.write("\n")
            return EXIT_OK
        if err.isatty():
            err.write("\n")
        return EXIT_INTERRUPTED
    except CreddError as error:
        if args["debug"]:
            raise
        if error.fault == Fault.POLICY_INVALID:
            # One problem a line, as `credd check` prints them.
            head, *problems = error.message.splitlines()
            if args["command"] == "reload":
                head += "; the old policy stays in force"
            err.write("".join(f"{line}\n" for line in [f"credctl: error: {head}", *problems]))
        else:
            err.write(f"credctl: error: {_one_line(error.message)}\n")
        return error.exit_status


def exit_now(status: int) -> NoReturn:
    """End the launcher's process with `status`, without the interpreter's teardown.

    Tearing down every module and object, with a last full garbage collection, is work
    nobody waits for after credctl's answer is out, yet it was 1.5 ms of an 11.6 ms
    `credctl status` (bench/RESULTS.md, shortcuts). credctl holds nothing that needs it:
    no thread, no atexit handler, no file left open for writing (its writes are atomic
    and closed), and the two streams are flushed here. A reader gone ends it quietly with
    EXIT_READER_GONE, as in `main`; any other stream that cannot be flushed (a full disk)
    is left to the interpreter's own exit, which reports it.
    """
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BrokenPipeError:
        os._exit(EXIT_READER_GONE)
    except (OSError, ValueError):
        sys.exit(status)
    os._exit(status)


def _dispatch(args: dict[str, Any], out: TextIO) -> int:
    command: str = args["command"]
    if command == "import":
        from credd.commands.keys import run_import_csv

        return run_import_csv(
            args["csv"],
            profile=args["profile"],
            force=args["force"],
            to_keyring=args["keyring"],
            file=args["file"],
            env=os.environ,
            out=out,
        )
    if command == "completion":
        from credd.completion import script

        out.write(script(CREDCTL, args["shell"]))
        return 0
    client = Client(args["socket"] or paths.socket_path())
    if command == "token":
        return _token(client, out, args["code"], args["profile"])
    if command == "status":
        return _status(client, out, as_json=args["json"], short=args["short"], name=args["profile"])
    if command == "refresh":
        return _refresh(client, out, args["profiles"])
    if command == "reload":
        result = client.request("reload")
        out.write(f"policy reloaded: {result['profiles']} profiles\n")
        for warning in result.get("warnings", []):
            out.write(f"warning: {warning}\n")
        return 0
    if command == "rotate":
        result = client.request("rotate", profile=args["profile"])
        out.write(f"{result['message']}\n")
        return 0
    if command == "prompt":
        return _prompt(client, out)
    if command == "credential-process":
        result = client.request("credential-process", profile=args["profile"])
        out.write(protocol.encode(result).decode("ascii"))
        return 0
    if command == "exec":
        from credd.ctl.child import exec_args, exec_command

        return exec_command(client, **exec_args(args))
    raise BadInputError(f"unknown command {command}")


def _token(client: Client, out: TextIO, code: str | None, profile: str | None) -> int:
    if code is None:
        if sys.stdin.isatty():
            import getpass  # only here: `credctl token CODE` must start fast

            # Named before it is typed, and then sent for that profile alone.
            profile = client.request("code-target", profile=profile)["profile"]
            code = getpass.getpass(f"MFA code for {profile}: ").strip()
        else:
            code = sys.stdin.readline().strip()
    result = client.request("token", code=protocol.validate_code(code), profile=profile)
    out.write(f"{result['profile']} renewed; {_expiry_phrase(result.get('expires_at'))}\n")
    if result.get("waiting"):
        out.write(f"still awaiting a code: {', '.join(result['waiting'])}\n")
    return 0


def _expiry_phrase(expires_at: str | None) -> str:
    if not expires_at:
        return "expiry unknown"
    left = utc_seconds(expires_at) - time.time()
    return f"{'expires' if left > 0 else 'expired'} {expires_at} ({_from_now(left)})"


def _from_now(seconds: float) -> str:
    """`in 3h12m` for a time ahead, `3h12m ago` for one past."""
    return f"in {format_relative(seconds)}" if seconds > 0 else f"{format_relative(-seconds)} ago"


def _status(client: Client, out: TextIO, *, as_json: bool, short: bool, name: str | None) -> int:
    status = client.request("status")
    if name is not None:
        status["profiles"] = [p for p in status["profiles"] if p["name"] == name]
        if not status["profiles"]:
            raise BadInputError(
                f"credd keeps no profile named {name}; `credctl status` lists them",
                fault=Fault.UNKNOWN_PROFILE,
            )
    if as_json:
        import json  # for scripts, who need no fast start: indented, as people read it

        out.write(json.dumps(status, indent=2) + "\n")
        return 0
    now = time.time()
    if short:
        profiles = status["profiles"]
        line = short_profile(profiles[0], now) if name is not None else short_status(profiles, now)
        out.write(line + "\n")
        return 0
    out.write(status_table(status["profiles"], now, colour=_use_colour(out)))
    if status.get("keys"):
        out.write("\n" + keys_table(status["keys"], now))
    return 0


def short_status(profiles: list[dict[str, Any]], now: float) -> str:
    """One short line for a shell prompt, whatever the number of profiles.

    The profiles that need the person (awaiting a code, in error, expired) by name, the
    most pressing first, at most `_SHORT_NAMES` of them and then how many more; the others
    as a count with the soonest expiry: `session-x awaiting-code +3 more | 96 ok 2h10m`.
    Profiles never obtained yet (roles waiting for their session's first code) are counted
    apart, `99 pending`: not ok, and nothing to do about them but what is named.
    """
    if not profiles:
        return "credd: no profiles"
    needing = sorted(
        (p for p in profiles if p["state"] in _NEEDS_YOU),
        key=lambda p: _NEEDS_YOU.index(p["state"]),
    )
    parts = []
    if needing:
        named = ", ".join(f"{p['name']} {p['state']}" for p in needing[:_SHORT_NAMES])
        more = len(needing) - _SHORT_NAMES
        parts.append(f"{named} +{more} more" if more > 0 else named)
    others = [p for p in profiles if p["state"] not in _NEEDS_YOU and p["state"] != "pending"]
    if others:
        expiries = [utc_seconds(p["expires_at"]) for p in others if p.get("expires_at")]
        soonest = f" {format_relative(min(expiries) - now)}" if expiries else ""
        parts.append(f"{len(others)} ok{soonest}")
    pending = sum(p["state"] == "pending" for p in profiles)
    if pending:
        parts.append(f"{pending} pending")
    return " | ".join(parts)


def short_profile(profile: dict[str, Any], now: float) -> str:
    """One profile for a prompt: its time left (`11h42m`) while it has some, else its state."""
    expires_at = profile.get("expires_at")
    if profile["state"] in _NEEDS_YOU or not expires_at:
        return str(profile["state"])
    left = utc_seconds(expires_at) - now
    return format_relative(left) if left > 0 else "expired"


def status_table(profiles: list[dict[str, Any]], now: float, *, colour: bool) -> str:
    """The aligned table `credctl status` prints for people (`now`: seconds since 1970)."""
    headers = ["PROFILE", "KIND", "STATE", "EXPIRES", "NEXT REFRESH", "LAST ERROR"]
    rows = []
    for p in profiles:
        expires = "-"
        if p.get("expires_at"):
            iso = p["expires_at"]
            expires = f"{iso[:10]} {iso[11:16]}Z ({_from_now(utc_seconds(iso) - now)})"
        refresh = "-"
        if p.get("next_refresh_at"):
            refresh = f"in {format_relative(utc_seconds(p['next_refresh_at']) - now)}"
        elif p["kind"] == "role" and p["state"] in ("pending", "fresh", "expired"):
            refresh = f"after {p['source_profile']}"  # a role that follows its source
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


def keys_table(keys: list[dict[str, Any]], now: float) -> str:
    """The long-term keys under the profiles: age, next rotation, and a rotation's state."""
    headers = ["KEY OF", "KEY", "AGE", "NEXT ROTATION", "ROTATION"]
    rows = []
    for key in keys:
        age = "-"
        if key.get("created_at"):
            age = format_long(now - utc_seconds(key["created_at"]))
        nxt = "-"
        if key.get("next_rotation"):
            left = utc_seconds(key["next_rotation"]) - now
            nxt = f"in {format_long(left)}" if left > 0 else "due"
        elif key.get("rotate_every") is None:
            nxt = "off (no rotate_every)"
        rotation = str(key.get("rotation") or "idle")
        if key.get("reason"):
            rotation += f": {_one_line(key['reason'])}"
        rows.append([key["profile"], key.get("key_id") or "-", age, nxt, rotation])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers) - 1)]
    lines = [
        "  ".join([*(c.ljust(widths[i]) for i, c in enumerate(row[:-1])), row[-1]]).rstrip()
        for row in [headers, *rows]
    ]
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
    from select import select  # only here: the other commands must start fast

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
        ready, _, _ = select(watched, [], [], 0 if events.has_events else None)
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
                        out.write(f"\n{name} renewed; {_expiry_phrase(event.get('expires_at'))}\n")
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


def _one_line(text: str) -> str:
    return " ".join(text.split())
