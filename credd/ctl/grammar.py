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
    imp.add_argument("--profile", help="the profile (default: the User Name, or the file name)")
    imp.add_argument("--force", action="store_true", help="replace keys already held")
    imp.add_argument("--keyring", action="store_true", help="into the OS keyring, not the file")
    return top


def parse(argv: list[str]) -> dict[str, Any]:
    """The command line as a dict of its values; exits 2 with usage on a mistake."""
    return vars(parser().parse_args(argv))
