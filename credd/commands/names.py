"""The profile names a shell completes: the running credd's, else the policy's.

The completion scripts (credd.completion) run `_CREDD_COMPLETE=profiles credd` at each
completion of a PROFILE; `CREDD_SOCKET` and `CREDD_POLICY` say where to look, as for
every command. It prints one name a line and nothing else, and always exits 0: a
shell's completion has no place for errors. The policy is read as `credd check` reads
it (a policy someone else could change is not read), but only its profile names are
taken, so a policy with mistakes still completes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from credd import paths
from credd.ctl.client import Client
from credd.errors import CreddError
from credd.policy.load import parse_yaml, read_policy

# A TAB press should not wait long on a daemon that is stuck.
DAEMON_TIMEOUT_SECONDS = 2.0


def profile_names(env: Mapping[str, str]) -> list[str]:
    """The running daemon's profiles, in its order; else the policy's; else none."""
    try:
        status = Client(paths.socket_path(env), timeout=DAEMON_TIMEOUT_SECONDS).request("status")
        return [str(profile["name"]) for profile in status["profiles"]]
    except (CreddError, OSError, KeyError, TypeError):
        pass  # no daemon answers (or not as expected): the policy says
    try:
        document, _ = parse_yaml(read_policy(Path(paths.policy_path(env))))
    except CreddError:
        return []
    profiles = document.get("profiles") if isinstance(document, dict) else None
    return [str(name) for name in profiles] if isinstance(profiles, dict) else []


def print_profile_names(env: Mapping[str, str], out: TextIO) -> int:
    """Print `profile_names`, one a line; exit status 0 whatever happened."""
    names = [name for name in profile_names(env) if name.isprintable() and name.strip() == name]
    out.write("".join(f"{name}\n" for name in names if name))
    return 0
