"""Which profiles the credentials file stops from being renewed as it stands: pure.

SPEC.md "The AWS files, before a code is spent": `credd check` and the daemon look
at the file (`CredentialsWriter.inspect`) before any code is asked for. A file that
cannot be read, parsed or replaced blocks every profile (each is written there); a
source profile outside the policy whose keys are not in it blocks the profiles made
from it, unless the OS keyring holds them (the caller asks it, off this pure code).
The daemon puts them in `error` with the reason, and plans them again as soon as
the file changes; `credd check` reports them and exits 2.
"""

from __future__ import annotations

from collections.abc import Collection

from credd.files.writer import FileHealth
from credd.policy.values import Policy


def sources_without_file_keys(policy: Policy, health: FileHealth) -> frozenset[str]:
    """The source profiles outside the policy whose keys the file does not hold: the ones
    to look for in the keyring before `blocked_by_file` blocks their profiles."""
    return frozenset(
        profile.source_profile
        for profile in policy.profiles
        if not profile.source_is_managed
        and profile.name not in policy.blocked
        and not health.has_keys(profile.source_profile)
    )


def blocked_by_file(
    policy: Policy, health: FileHealth, in_keyring: Collection[str] = frozenset()
) -> dict[str, str]:
    """Each profile the file `health` describes blocks, with why and the fix, in policy order.

    Profiles the policy itself blocks (a source found nowhere) are left to the policy; a
    source in `in_keyring` (the keyring holds its keys, or may: it is locked) needs none
    in the file.
    """
    if health.problem is not None:
        return {profile.name: health.problem for profile in policy.profiles}
    missing = sources_without_file_keys(policy, health) - set(in_keyring)
    return {
        profile.name: (
            f"source profile {profile.source_profile} has no aws_access_key_id and"
            f" aws_secret_access_key in {health.path} or the keyring; add them with"
            f" `aws configure --profile {profile.source_profile}`, `credctl import --csv"
            " FILE` or `credd keys add`"
        )
        for profile in policy.profiles
        if not profile.source_is_managed and profile.source_profile in missing
    }
