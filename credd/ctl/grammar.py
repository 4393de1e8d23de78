"""credctl's whole command line, as argparse: help, errors, and every form it accepts.

`credctl` loads this only for what `credd.ctl.main.plain_args` does not recognise (help,
`--version`, mistakes, `--option=value`, abbreviations): `argparse` costs ~14 ms of a
~25 ms start (bench/RESULTS.md #2). Both give the same result for every command line
`plain_args` accepts; tests/test_ctl.py checks it on generated lines.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from credd import __version__


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized to the terminal without importing `shutil`."""

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


def parser() -> argparse.ArgumentParser:
    """The grammar of `credctl`."""
    top = _ArgumentParser(
        prog="credctl", description="Control a running credd (AWS MFA session keeper)."
    )
    top.add_argument("--version", action="version", version=f"credctl {__version__}")
    top.add_argument("--socket", help="control socket (default: $CREDD_SOCKET)")
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(
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
    imp.add_argument("--csv", required=True, metavar="FILE")
    imp.add_argument("--file", metavar="CREDENTIALS", help="credentials file")

    run = sub.add_parser(
        "exec",
        help="run a command with a profile's credentials, kept fresh while it runs",
        usage="credctl exec PROFILE [--env] [--ttl D] -- COMMAND [ARG...]",
        description=(
            "Runs COMMAND with PROFILE's credentials served by credd's local endpoint "
            "(AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN), "
            "which its SDK asks again before they expire. The command sees no credentials "
            "file (AWS_SHARED_CREDENTIALS_FILE=/dev/null) and no AWS_PROFILE or static "
            "keys. Exit status: COMMAND's (128+N if signal N ended it, 127 if it could not "
            "be run); 1, 2 or 3 as for other commands when it is not started."
        ),
    )
    run.add_argument("profile", metavar="PROFILE")
    run.add_argument(
        "--env",
        action="store_true",
        help="export static AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and "
        "AWS_CREDENTIAL_EXPIRATION instead, for tools that read no endpoint (not renewed)",
    )
    run.add_argument(
        "--ttl", metavar="D", help="the token's longest life, e.g. 90m (default: 12h, at most 168h)"
    )
    run.add_argument("argv", nargs="*", metavar="COMMAND", help="the command, after --")
    return top


def parse(argv: list[str]) -> dict[str, Any]:
    """The command line as a dict of its values; exits 2 with usage on a mistake."""
    head, command = _split_exec(argv)
    args = vars(parser().parse_args(head))
    if command is not None:
        args["argv"] = [*args["argv"], *command]
    return args


def _split_exec(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """For `exec`, the words before its `--` and the command after it; else (argv, None).

    argparse would read the command's own options as credctl's, and Python 3.11's cannot
    give a `*` positional the words after `--` once an option comes between them.
    """
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            return argv, None
        if word == "-" or not word.startswith("-"):
            break
        # `--socket PATH`, or an abbreviation of it, takes the next word.
        takes_value = "=" not in word and len(word) > 2 and "--socket".startswith(word)
        index += 2 if takes_value else 1
    else:
        return argv, None
    if argv[index] != "exec" or "--" not in argv[index:]:
        return argv, None
    cut = argv.index("--", index)
    return argv[:cut], argv[cut + 1 :]
