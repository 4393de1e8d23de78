"""`credd check`: validate the policy and what it refers to, and say what credd would do.

Exit 0 when the policy is valid and every source profile exists; 2 otherwise,
with every problem printed at once (SPEC.md "Commands").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from credd.adapters.keyring import Keyring
from credd.commands.keys import file_keys
from credd.errors import CreddError, PolicyError
from credd.files.writer import CredentialsWriter
from credd.policy import Policy, format_summary, load_policy

EXIT_VALID = 0
EXIT_INVALID = 2


def run_check(
    policy_path: Path,
    env: Mapping[str, str],
    out: TextIO,
    err: TextIO,
    keyring: Keyring | None = None,
) -> int:
    """Print the policy's summary to `out` (exit 0), or every problem to `err` (exit 2)."""
    keyring = keyring or Keyring()
    try:
        policy = load_policy(policy_path, env, in_keyring=keyring.holds)
    except PolicyError as exc:
        err.write(f"{exc.message}\n")
        return EXIT_INVALID
    if policy.problems:
        count = len(policy.problems)
        plural = "s" if count != 1 else ""
        err.write(f"{policy.path}: {count} profile{plural} cannot be renewed\n")
        err.writelines(f"  {problem}\n" for problem in policy.problems.values())
        return EXIT_INVALID
    out.write(format_summary(policy))
    out.writelines(f"{line}\n" for line in _keyring_lines(policy, keyring))
    return EXIT_VALID


def _keyring_lines(policy: Policy, keyring: Keyring) -> list[str]:
    """Which sources' keys are in the keyring; a warning where plaintext keys remain too."""
    sources = sorted({p.source_profile for p in policy.profiles if not p.source_is_managed})
    listed = keyring.profiles()
    if not sources or not listed:
        return []
    in_keyring = [s for s in sources if s in listed]
    if not in_keyring:
        return []
    lines = ["", f"keys in the keyring: {', '.join(in_keyring)}"]
    try:
        sections = CredentialsWriter(policy.credentials_file).read()
    except CreddError:
        return lines
    for source in in_keyring:
        if file_keys(sections.get(source)) is not None:
            lines.append(
                f"warning: {policy.credentials_file} still holds plaintext keys for {source};"
                " the keyring's are used: run `credd keys import "
                f"{source}` (the same key), or delete its two key lines"
            )
    return lines
