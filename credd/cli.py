"""`credd`: the daemon and its admin commands. Only this entry point configures logging.

Its command line is the table in credd/grammar.py. User-facing failures are handled
here alone: one line (or the policy's list of problems) on stderr and an exit status
from SPEC.md, as credd/errors.py maps them; a traceback instead with `--debug`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from credd import paths
from credd.cmdline import fast_parse
from credd.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, CreddError
from credd.grammar import CREDD

# `credd run` may exec itself again before anything else (credd.adapters.memory): what is
# imported before that is paid twice, so logging, pathlib and typing wait until needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Set by the completion scripts (credd.completion): print the profile names and stop.
COMPLETE_VARIABLE = "_CREDD_COMPLETE"


def configure_logging(level: str) -> None:
    """Log to stderr (journald and launchd capture it)."""
    import logging

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
    env = os.environ
    if env.get(COMPLETE_VARIABLE) == "profiles":
        from credd.commands.names import print_profile_names

        return print_profile_names(env, sys.stdout)
    words = list(sys.argv[1:] if argv is None else argv)
    args = fast_parse(CREDD, words)
    if args is None:
        from credd.cmdparser import parse

        args = parse(CREDD, words)
    if args["command"] == "run" and argv is None:
        from credd.adapters.memory import restart_without_thread_caches

        restart_without_thread_caches()  # under glibc, an exec (same pid) at most once
    try:
        return _dispatch(args, env)
    except CreddError as error:
        if args["debug"]:
            raise
        sys.stderr.write(f"credd: error: {error.message}\n")
        return error.exit_status
    except KeyboardInterrupt:
        # End the line a question (login's code) was left on, before the shell's prompt.
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        return EXIT_INTERRUPTED


def _dispatch(args: dict[str, Any], env: Mapping[str, str]) -> int:
    from pathlib import Path

    command = args["command"]
    policy = Path(args["policy"] or paths.policy_path(env))
    if command == "run":
        from credd.adapters.memory import pause_collector

        pause_collector()  # until READY (credd.daemon.run)
        from credd.daemon.run import run

        configure_logging(args["log_level"])
        return run(
            policy_path=policy,
            socket_path=Path(args["socket"] or paths.socket_path(env)),
            env=env,
        )
    if command == "check":
        from credd.commands.check import run_check

        return run_check(policy, env, sys.stdout, sys.stderr)
    if command == "install":
        from credd.commands.install import install

        return install(
            args["kind"], dry_run=args["dry_run"], force=args["force"], env=env, out=sys.stdout
        )
    if command == "init":
        from credd.commands.init import run_init

        # init finds the policy as every command does, from CREDD_POLICY first.
        return run_init(env={**env, "CREDD_POLICY": str(policy)} if args["policy"] else env)
    if command == "login":
        from argparse import Namespace

        from credd.commands.login import run_login

        # login finds a running credd as credctl does, from CREDD_SOCKET first.
        return run_login(
            Namespace(**args),
            env={**env, "CREDD_SOCKET": args["socket"]} if args["socket"] else env,
        )
    if command.startswith("keys "):
        from credd.commands.keys import run_keys

        return run_keys(command.split()[1], args, env=env)
    if command == "completion":
        from credd.completion import script

        sys.stdout.write(script(CREDD, args["shell"]))
        return 0
    return EXIT_BAD_INPUT  # the table admits no other command
