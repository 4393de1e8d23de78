"""credctl's command line, as one table (credd.cmdline): its parsers, help and completion.

`credctl` reads it on every run, so it stays light: credd.cmdline's types only, no
argparse (credd.cmdparser builds that from this table when it is needed).
Adding a command is one `Command(...)` entry here and one branch in credd/ctl/main.py.
"""

from __future__ import annotations

from credd import __version__, paths
from credd.cmdline import (
    ANY,
    BAD_INPUT,
    COMMAND,
    DEBUG,
    FILE,
    JSON,
    OPTIONAL,
    PROFILE,
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

# The exit statuses most commands share (SPEC.md; credd/errors.py maps them).
NO_DAEMON = (3, "credd is not running at {socket}, or is not to be trusted (not your own)")
DAEMON_COMMON = (SOCKET.flag, DEBUG.flag)


def _facts(env: Mapping[str, str]) -> dict[str, str]:
    return {"socket": paths.socket_path(env), "credentials": paths.credentials_path(env)}


CREDCTL = Program(
    "credctl",
    "Control a running credd, which keeps AWS MFA sessions and the roles chained on them "
    "fresh: feed it codes, see and renew its profiles.",
    version=__version__,
    common=[SOCKET, JSON, DEBUG],
    exits=[
        (0, "done"),
        (1, "AWS said no, or something failed"),
        BAD_INPUT,
        NO_DAEMON,
    ],
    facts=_facts,
    commands=[
        Command(
            "token",
            "feed a 6-digit MFA code",
            "Feeds a 6-digit TOTP code to credd. Without --profile it goes to the MFA profile "
            "that has waited longest or, if none waits, renews the MFA profile that expires "
            "soonest, so a code can be fed ahead of time. With no CODE it is asked for on the "
            "terminal, or read as one line from standard input when that is not a terminal "
            "(`ykman oath accounts code --single aws | credctl token`).\n\n"
            "Prints the profile renewed, its new expiry, and any profile still waiting.",
            positionals=[
                Positional(
                    "code",
                    "CODE",
                    "the code (asked for, or read from stdin, if left out)",
                    nargs=OPTIONAL,
                )
            ],
            options=[
                Option(
                    "--profile",
                    "the MFA profile the code is for",
                    metavar="PROFILE",
                    complete=PROFILE,
                )
            ],
            common=DAEMON_COMMON,
            exits=[
                (0, "renewed"),
                (1, "AWS rejected the code (the profile keeps waiting)"),
                (2, "bad input: not 6 digits, an unknown profile"),
                NO_DAEMON,
            ],
        ),
        Command(
            "status",
            "every profile's state, or one short line for a shell prompt",
            "Shows every profile credd keeps (or only PROFILE): kind, state, expiry (absolute "
            "and relative), next refresh, last error.\n\n"
            "--short prints one short line for a shell prompt whatever the number of "
            "profiles: the profiles that need you (awaiting a code, expired, error) by name, "
            "the others as a count with the soonest expiry, e.g. `session-alice "
            "awaiting-code | 3 ok 2h10m`; with PROFILE, that profile's time left (`11h42m`) "
            "or its state.",
            positionals=[
                Positional(
                    "profile", "PROFILE", "only this profile", nargs=OPTIONAL, complete=PROFILE
                )
            ],
            options=[Option("--short", "one short line, for shell prompts")],
            common=(SOCKET.flag, JSON.flag, DEBUG.flag),
            exits=[(0, "shown"), (2, "no such profile"), NO_DAEMON],
        ),
        Command(
            "refresh",
            "renew now",
            "Renews now: with no PROFILE, every profile that needs no code (the roles); an "
            "MFA profile named explicitly goes to awaiting-code and a code is asked for.",
            positionals=[
                Positional("profiles", "PROFILE", "a profile to renew", nargs=ANY, complete=PROFILE)
            ],
            common=DAEMON_COMMON,
            exits=[
                (0, "renewed, or a code is asked for"),
                (1, "a profile could not be renewed"),
                (2, "no such profile"),
                NO_DAEMON,
            ],
        ),
        Command(
            "reload",
            "re-read the policy (as SIGHUP)",
            "Makes credd re-read its policy, as SIGHUP does, and waits for the outcome. An "
            "invalid policy is reported, one problem a line, and the old one stays in force.",
            common=DAEMON_COMMON,
            exits=[(0, "reloaded"), (2, "the policy is invalid; the old one stays"), NO_DAEMON],
        ),
        Command(
            "rotate",
            "rotate a long-term access key now",
            "Asks credd to rotate the long-term access key of PROFILE now, as rotate_every "
            "would: PROFILE holds the key (a source_profile), or is a profile of the policy "
            "made from it. credd creates a new key with the MFA session it holds for that "
            "source, stores it where the old one lives (keyring or credentials file), proves "
            "it works, then deletes the old one. With two keys already present nothing is "
            "created and the reason is shown.",
            positionals=[
                Positional(
                    "profile", "PROFILE", "the profile whose key to rotate", complete=PROFILE
                )
            ],
            common=DAEMON_COMMON,
            exits=[
                (0, "rotated"),
                (1, "not rotated: two keys present, or IAM refused (the reason is shown)"),
                (2, "no such profile"),
                NO_DAEMON,
            ],
        ),
        Command(
            "prompt",
            "stay attached and ask for each code as it is needed",
            "Stays attached: each time credd needs a code it prints which profile and "
            "device, reads the code from the terminal, and prints the result. Ctrl-C leaves.",
            common=DAEMON_COMMON,
            exits=[(0, "left with Ctrl-C, or credd stopped"), NO_DAEMON],
        ),
        Command(
            "credential-process",
            "AWS credential_process JSON from the daemon's memory",
            "Prints the AWS credential_process JSON (Version 1, AccessKeyId, SecretAccessKey, "
            "SessionToken, Expiration) of PROFILE from credd's memory, for "
            "`credential_process = credctl credential-process PROFILE` in ~/.aws/config.",
            positionals=[
                Positional("profile", "PROFILE", "a profile credd keeps", complete=PROFILE)
            ],
            common=DAEMON_COMMON,
            exits=[
                (0, "printed"),
                (1, "credd holds no valid credentials for it (the reason on stderr)"),
                (2, "no such profile"),
                NO_DAEMON,
            ],
        ),
        Command(
            "import",
            "import the AWS console's access-key CSV",
            "Imports the AWS console's access-key CSV (User Name, Access key ID, Secret "
            "access key) into the credentials file with credd's safe writer (or, with "
            "--keyring, into the OS keyring), with or without a running credd. Keys already "
            "held for the profile are never replaced without --force, and a profile credd "
            "manages is always refused.",
            options=[
                Option(
                    "--csv",
                    "the CSV the console gave",
                    metavar="FILE",
                    required=True,
                    complete=FILE,
                ),
                Option(
                    "--file",
                    "the credentials file; here {credentials} ($AWS_SHARED_CREDENTIALS_FILE, "
                    "else ~/.aws/credentials)",
                    metavar="CREDENTIALS",
                    complete=FILE,
                ),
                Option(
                    "--profile",
                    "the profile to write (default: the CSV's User Name, else the file's name)",
                    metavar="PROFILE",
                ),
                Option("--force", "replace keys already held for the profile"),
                Option("--keyring", "into the OS keyring, not the credentials file"),
            ],
            common=(DEBUG.flag,),
            exits=[
                (0, "imported"),
                (1, "the keyring or the file failed"),
                (
                    2,
                    "bad input: the CSV, keys already there (see --force), a profile credd "
                    "manages, or a file credd will not rewrite",
                ),
            ],
        ),
        Command(
            "exec",
            "run a command with a profile's credentials, kept fresh while it runs",
            "Runs COMMAND with PROFILE's credentials served by credd's local endpoint "
            "(AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN), "
            "which its SDK asks again before they expire. The command sees no credentials "
            "file (AWS_SHARED_CREDENTIALS_FILE=/dev/null) and no AWS_PROFILE or static keys.",
            usage="credctl exec PROFILE [--env] [--ttl D] -- COMMAND [ARG...]",
            positionals=[
                Positional("profile", "PROFILE", "a profile credd keeps", complete=PROFILE),
                Positional("argv", "COMMAND", "the command, after --", nargs=ANY, complete=COMMAND),
            ],
            rest="argv",
            options=[
                Option(
                    "--env",
                    "export static AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN "
                    "and AWS_CREDENTIAL_EXPIRATION instead, for tools that read no endpoint "
                    "(not renewed)",
                ),
                Option(
                    "--ttl",
                    "the token's longest life, e.g. 90m; 12h if left out, at most 168h",
                    metavar="D",
                ),
            ],
            common=DAEMON_COMMON,
            exits=[
                (0, "COMMAND's own status (128+N if signal N ended it)"),
                (127, "COMMAND could not be run"),
                (1, "before COMMAND starts: credd cannot serve the credentials"),
                (2, "before COMMAND starts: bad input (no command, a bad --ttl, no such profile)"),
                NO_DAEMON,
            ],
        ),
        completion_command("credctl"),
    ],
)
