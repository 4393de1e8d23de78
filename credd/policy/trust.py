"""Whether anyone but the user could change the policy (SPEC.md "Files and locations").

The policy names commands credd runs (`code_command`, `notify`) and where
credentials are written. So, as OpenSSH's StrictModes trusts `~/.ssh`, credd
reads a policy only when no one else can change it: the file and the
directory that holds it are owned by the user (or root) and not writable by
group or others. A symlinked policy is judged by its target and the
target's directory, and by the directory that holds the link too, since
whoever can write there could point the link elsewhere. A sticky directory
(`/tmp`) is still writable by others: they could put a policy there first.

`judge` is pure; `policy_problems` and `directory_problems` look at the files.
Messages name the path, the owner or mode at fault and the fix, never the
policy's content.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

ROOT_UID = 0
# Where `credd init` keeps the policy: a directory only the user can write.
_OWN_DIRECTORY = "~/.config/credd"


def judge(
    path: str, info: os.stat_result, *, uid: int, directory: bool, shown: str = ""
) -> list[str]:
    """What makes the file (or `directory`) at `path`, as `info` describes it, untrusted.

    `shown` is how the message names it (default: `path`); the fix names `path`.
    """
    shown = shown or path
    what = f"{shown}, the policy's directory," if directory else shown
    harm = (
        "could put another policy in its place"
        if directory
        else "could change the commands credd runs"
    )
    quoted = shlex.quote(path)
    problems: list[str] = []
    owner = info.st_uid
    if owner not in (uid, ROOT_UID):
        problems.append(
            f"{what} is owned by uid {owner}, not by you (uid {uid}) or root: its owner {harm};"
            f" make it yours (`sudo chown {uid} {quoted}`) or keep the policy in a"
            f" {'directory' if directory else 'file'} of your own"
        )
    writers = [
        who
        for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
        if info.st_mode & bit
    ]
    if writers:
        whom = " and ".join(writers)
        mode = f"mode {stat.S_IMODE(info.st_mode):04o}"
        if directory and (info.st_mode & stat.S_ISVTX or owner != uid):
            # Not the user's to loosen or tighten (/tmp): the policy belongs elsewhere.
            fix = (
                f"keep the policy in a directory only you can write, such as {_OWN_DIRECTORY},"
                " and point --policy or CREDD_POLICY at it"
            )
        else:
            fix = f"run `chmod go-w {quoted}`"
        who = "any other user" if "others" in writers else "anyone in its group"
        problems.append(f"{what} is writable by {whom} ({mode}): {who} {harm}; {fix}")
    return problems


def policy_problems(path: Path, info: os.stat_result, *, uid: int | None = None) -> list[str]:
    """Why the policy at `path`, opened and found to be `info` (fstat), is not trusted.

    Looks at the directory holding `path` and, for a symlink, at its target's.
    """
    uid = os.getuid() if uid is None else uid
    target = os.path.realpath(path)
    shown = str(path) if target == os.path.abspath(path) else f"{target} (the target of {path})"
    problems = judge(target, info, uid=uid, directory=False, shown=shown)
    seen: set[tuple[int, int]] = set()
    for directory in (os.path.dirname(os.path.abspath(path)), os.path.dirname(target)):
        try:
            found = os.stat(directory)
        except OSError as error:
            problems.append(
                f"{directory}, the policy's directory, cannot be checked"
                f" ({error.strerror or type(error).__name__})"
            )
            continue
        if (found.st_dev, found.st_ino) in seen:
            continue
        seen.add((found.st_dev, found.st_ino))
        problems.extend(judge(directory, found, uid=uid, directory=True))
    return problems


def directory_problems(directory: Path, *, uid: int | None = None) -> list[str]:
    """Why a policy in `directory` (which exists) would not be trusted; [] when it would."""
    uid = os.getuid() if uid is None else uid
    real = os.path.realpath(directory)
    return judge(real, os.stat(real), uid=uid, directory=True)
