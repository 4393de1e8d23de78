"""credd's command line, as one table (credd.cmdline): its parsers, help and completion.

credctl's is credd/ctl/grammar.py. Adding a command is one `Command(...)` entry here
and one branch in credd/cli.py.
"""

from __future__ import annotations

import sys

from credd import __version__, paths
from credd.cmdline import (
    BAD_INPUT,
    DEBUG,
    FILE,
    JSON,
    LOG_LEVEL,
    POLICY,
    SOCKET,
    Command,
    Option,
    Positional,
    Program,
    completion_command,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

INTERRUPTED = (130, "interrupted (Ctrl-C)")
SERVICE_MANAGERS = ("systemd", "launchd")


def _facts(env: Mapping[str, str]) -> dict[str, str]:
    from credd.commands.install import launchd_plist_path, systemd_unit_path

    return {
        "socket": paths.socket_path(env),
        "policy": paths.policy_path(env),
        "credentials": paths.credentials_path(env),
        "unit": str(systemd_unit_path(env)),
        "plist": str(launchd_plist_path(env)),
        "python": sys.executable,
    }


# `credd keys`'s shared parts.
_PROFILE_ARG = Positional("profile", "PROFILE", "the source profile (an IAM user's long-term keys)")
_KEYS_FILE = Option(
    "--file",
    "the credentials file (default: {credentials})",
    metavar="CREDENTIALS",
    complete=FILE,
)
_KEYS_EXITS = [
    (0, "done"),
    (1, "the keyring or the file failed (locked, absent, unwritable)"),
    (2, "bad input; nothing changed"),
]


CREDD = Program(
    "credd",
    "Keeps AWS MFA sessions, and the roles chained on them, fresh in the background: the "
    "daemon (`credd run`) and its admin commands. `credctl` talks to the running daemon.",
    version=__version__,
    common=[POLICY, SOCKET, LOG_LEVEL, JSON, DEBUG],
    exits=[(0, "done"), (1, "something failed"), BAD_INPUT],
    facts=_facts,
    commands=[
        Command(
            "run",
            "the daemon, in the foreground",
            "Runs the daemon in the foreground, as systemd and launchd run it: it keeps the "
            "policy's profiles fresh, answers credctl on the control socket, and logs to "
            "stderr. An invalid policy stops it at once with the messages of `credd check`.",
            common=(POLICY.flag, SOCKET.flag, LOG_LEVEL.flag, DEBUG.flag),
            exits=[
                (0, "stopped (SIGTERM or SIGINT)"),
                (1, "another credd serves the socket (its pid is named), or it failed"),
                (2, "the policy is invalid, or the socket path cannot be used"),
                (70, "its event loop stalled (the service manager starts a new one)"),
            ],
        ),
        Command(
            "check",
            "validate the policy and what it refers to",
            "Validates the policy and what it refers to (source profiles, chains, duration "
            "caps) and prints what credd would do; every problem at once otherwise.",
            common=(POLICY.flag, DEBUG.flag),
            exits=[(0, "valid"), (2, "invalid, or a profile cannot be renewed")],
        ),
        Command(
            "init",
            "first-run setup: write a policy by answering questions",
            "Asks on the terminal what `aws configure mfa-login` asks (source profile, MFA "
            "device, target profile, duration), writes the policy ({policy} unless --policy "
            "says otherwise), checks it and offers `credd install`.",
            common=(POLICY.flag, DEBUG.flag),
            exits=[
                (0, "written and valid"),
                (
                    1,
                    "nothing written (input ended, or the policy there kept), or the install "
                    "failed",
                ),
                (2, "written but `credd check` finds a problem, or refused to write"),
                INTERRUPTED,
            ],
        ),
        Command(
            "login",
            "one renewal now, with no daemon (like mfa-login)",
            "One MFA session now, in the foreground, with no daemon: `aws configure "
            "mfa-login` for anyone without AWS CLI v2, written with credd's safe writer into "
            "the credentials file ({credentials}).",
            options=[
                Option(
                    "--profile",
                    "the source profile, with long-term keys (default: default)",
                    metavar="SRC",
                ),
                Option(
                    "--update-profile",
                    "the profile to write (default: session-<MFA device name>)",
                    metavar="DST",
                ),
                Option("--serial-number", "the MFA device's ARN", metavar="ARN"),
                Option(
                    "--duration-seconds",
                    "the session's length, 900-129600 (default: 43200)",
                    metavar="N",
                    type=int,
                ),
                Option("--token-code", "the 6-digit code (asked for if left out)", metavar="CODE"),
            ],
            # The socket: a running credd that manages the profile gets the code instead.
            common=(SOCKET.flag, DEBUG.flag),
            exits=[
                (0, "written"),
                (1, "AWS refused (a wrong or used code, bad keys), or the file was not written"),
                (2, "bad input"),
                INTERRUPTED,
            ],
        ),
        Command(
            "install",
            "write the systemd user unit or the LaunchAgent",
            "Writes the systemd user unit ({unit}) or the macOS LaunchAgent ({plist}) that "
            "runs `{python} -m credd run`, and prints the commands that start it. A file "
            "that differs is replaced only with --force.",
            positionals=[
                Positional(
                    "kind",
                    "MANAGER",
                    "systemd (Linux) or launchd (macOS)",
                    choices=SERVICE_MANAGERS,
                )
            ],
            options=[
                Option("--dry-run", "print the file and the next commands; write nothing"),
                Option("--force", "replace a file that differs from what credd would write"),
            ],
            common=(DEBUG.flag,),
            exits=[
                (0, "written, already current, or printed (--dry-run)"),
                (1, "a changed file is there (see --force), or it could not be written"),
                (2, "bad input: the interpreter's or HOME's path"),
            ],
        ),
        Command(
            "keys",
            "long-term keys in the OS keyring",
            "The IAM user's long-term keys, out of the credentials file and into the OS "
            "keyring, and back; and their rotation.",
            exits=_KEYS_EXITS,
            commands=[
                Command(
                    "import",
                    "move a profile's keys from the credentials file into the keyring",
                    "Moves PROFILE's long-term keys from the credentials file into the OS "
                    "keyring: stored, read back and compared, and only then the two key lines "
                    "removed from the file (every other byte kept).",
                    positionals=[_PROFILE_ARG],
                    options=[_KEYS_FILE],
                    common=(DEBUG.flag,),
                    exits=_KEYS_EXITS,
                ),
                Command(
                    "add",
                    "store keys straight into the keyring",
                    "Stores PROFILE's long-term keys straight into the keyring, typed on the "
                    "terminal (the secret not echoed) or from the console's CSV; never on disk.",
                    positionals=[_PROFILE_ARG],
                    options=[
                        Option(
                            "--csv", "the console's access-key CSV", metavar="FILE", complete=FILE
                        ),
                        Option("--force", "replace a key the keyring holds for PROFILE"),
                    ],
                    common=(DEBUG.flag,),
                    exits=_KEYS_EXITS,
                ),
                Command(
                    "list",
                    "every long-term key credd can use",
                    "Each long-term key credd can use: profile, masked key id, where it lives "
                    "(keyring or file), its age and next rotation (as IAM said when credd last "
                    "asked); never a secret. A rotation cut off before is finished or undone "
                    "first.",
                    options=[_KEYS_FILE],
                    common=(JSON.flag, POLICY.flag, DEBUG.flag),
                    exits=_KEYS_EXITS,
                ),
                Command(
                    "export",
                    "the way back: the keys into the credentials file, out of the keyring",
                    "Writes PROFILE's keys into the credentials file (0600), reads them back "
                    "and compares, and only then deletes the keyring item.",
                    positionals=[_PROFILE_ARG],
                    options=[_KEYS_FILE],
                    common=(DEBUG.flag,),
                    exits=_KEYS_EXITS,
                ),
                Command(
                    "rotate",
                    "rotate a long-term key now, in the foreground",
                    "Rotates PROFILE's long-term access key now: a new key is created, stored "
                    "where the old one lives (keyring or credentials file) and read back, "
                    "proven to work, and only then is the old key deleted. IAM is called with "
                    "the MFA session a running credd holds for PROFILE; with none, a code is "
                    "asked for (or taken from --token-code) and a session made for the "
                    "rotation. A rotation cut off before is finished or undone first.",
                    positionals=[_PROFILE_ARG],
                    options=[
                        Option(
                            "--token-code",
                            "the 6-digit code (asked for if one is needed)",
                            metavar="CODE",
                        ),
                        _KEYS_FILE,
                    ],
                    common=(POLICY.flag, SOCKET.flag, DEBUG.flag),
                    exits=[
                        (0, "rotated"),
                        (
                            1,
                            "not rotated: two keys present, IAM or the keyring refused (the"
                            " reason is shown)",
                        ),
                        (2, "bad input; nothing changed"),
                    ],
                ),
                Command(
                    "remove",
                    "delete the keyring item",
                    "Deletes PROFILE's keyring item; on a terminal it asks first.",
                    positionals=[_PROFILE_ARG],
                    options=[Option("--yes", "do not ask on a terminal")],
                    common=(DEBUG.flag,),
                    exits=_KEYS_EXITS,
                ),
            ],
        ),
        completion_command("credd"),
    ],
)
