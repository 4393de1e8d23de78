"""`credd check`: validate the policy and what it refers to, and say what credd would do.

Exit 0 when the policy is valid and every source profile exists; 2 otherwise,
with every problem printed at once (SPEC.md "Commands").
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from credd.errors import PolicyError
from credd.policy import format_summary, load_policy

EXIT_VALID = 0
EXIT_INVALID = 2


def run_check(policy_path: Path, env: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    """Print the policy's summary to `out` (exit 0), or every problem to `err` (exit 2)."""
    try:
        policy = load_policy(policy_path, env)
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
    return EXIT_VALID
