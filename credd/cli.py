"""`credd`: the daemon and its admin commands. Only this entry point configures logging.

User-facing failures are handled here alone: one line (or the policy's list of
problems) on stderr and an exit status from SPEC.md, as credd/errors.py maps them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from credd import __version__, paths
from credd.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, CreddError

LOG_LEVELS = ("debug", "info", "warning", "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="credd", description="Keeps AWS MFA sessions, and roles chained on them, fresh."
    )
    parser.add_argument("--version", action="version", version=f"credd {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="the daemon, in the foreground")
    run.add_argument("--policy", type=Path, help="policy file (default: $CREDD_POLICY)")
    run.add_argument("--socket", type=Path, help="control socket (default: $CREDD_SOCKET)")
    run.add_argument("--log-level", choices=LOG_LEVELS, default="info")

    check = sub.add_parser("check", help="validate the policy and what it refers to")
    check.add_argument("--policy", type=Path)

    install = sub.add_parser("install", help="write the systemd user unit or the LaunchAgent")
    install.add_argument("kind", choices=("systemd", "launchd"))
    install.add_argument("--dry-run", action="store_true", help="print instead of writing")
    install.add_argument("--force", action="store_true", help="overwrite a changed file")

    sub.add_parser("init", help="first-run setup: write a policy by answering questions")

    login = sub.add_parser("login", help="one renewal now, with no daemon (like mfa-login)")
    login.add_argument("--profile", help="source profile with long-term keys (default: default)")
    login.add_argument("--update-profile", help="profile to write (default: session-<device>)")
    login.add_argument("--serial-number", help="MFA device ARN")
    login.add_argument("--duration-seconds", type=int, help="session length, 900-129600")
    login.add_argument("--token-code", help="the 6-digit code (asked for if left out)")

    keys = sub.add_parser("keys", help="long-term keys in the OS keyring")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    key_import = keys_sub.add_parser(
        "import", help="move a profile's keys from the credentials file into the keyring"
    )
    key_import.add_argument("profile", metavar="PROFILE")
    key_import.add_argument("--file", help="credentials file (default: ~/.aws/credentials)")
    key_add = keys_sub.add_parser("add", help="store keys straight into the keyring")
    key_add.add_argument("profile", metavar="PROFILE")
    key_add.add_argument("--csv", metavar="FILE", help="the console's access-key CSV")
    key_add.add_argument("--force", action="store_true", help="replace a key held there")
    key_list = keys_sub.add_parser("list", help="every long-term key credd can use")
    key_list.add_argument("--json", action="store_true")
    key_list.add_argument("--file", help="credentials file (default: ~/.aws/credentials)")
    key_export = keys_sub.add_parser(
        "export", help="the way back: the keys into the credentials file, out of the keyring"
    )
    key_export.add_argument("profile", metavar="PROFILE")
    key_export.add_argument("--file", help="credentials file (default: ~/.aws/credentials)")
    key_remove = keys_sub.add_parser("remove", help="delete the keyring item")
    key_remove.add_argument("profile", metavar="PROFILE")
    key_remove.add_argument("--yes", action="store_true", help="do not ask on a terminal")
    return parser


def configure_logging(level: str) -> None:
    """Log to stderr (journald and launchd capture it)."""
    handler = logging.StreamHandler(sys.stderr)
    # journald stamps each line itself; a terminal gets the time from us.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    handler.setFormatter(logging.Formatter(stamp + "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The AWS libraries' own loggers are held at INFO by `credd.adapters.sts.quiet_aws_loggers`,
    # which `credd run` calls before any STS client exists: their DEBUG output holds secrets.


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `credd` console script."""
    args = _parser().parse_args(argv)
    env = os.environ
    try:
        if args.command == "run":
            from credd.daemon.run import run

            configure_logging(args.log_level)
            return run(
                policy_path=args.policy or Path(paths.policy_path(env)),
                socket_path=args.socket or Path(paths.socket_path(env)),
                env=env,
            )
        if args.command == "check":
            from credd.commands.check import run_check

            policy = args.policy or Path(paths.policy_path(env))
            return run_check(policy, env, sys.stdout, sys.stderr)
        if args.command == "install":
            from credd.commands.install import install

            return install(
                args.kind, dry_run=args.dry_run, force=args.force, env=env, out=sys.stdout
            )
        if args.command == "init":
            from credd.commands.init import run_init

            return run_init(env=env)
        if args.command == "keys":
            from credd.commands.keys import run_keys

            return run_keys(args, env=env)
        if args.command == "login":
            from credd.commands.login import run_login

            return run_login(args, env=env)
    except CreddError as error:
        sys.stderr.write(f"credd: error: {error.message}\n")
        return error.exit_status
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT  # argparse admits no other command
