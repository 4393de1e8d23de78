"""Which profiles the credentials file stops from being renewed as it stands: pure.

SPEC.md "The AWS files, before a code is spent": `credd check` and the daemon look
at the file (`CredentialsWriter.inspect`) before any code is asked for. A file that
cannot be read, parsed or replaced blocks every profile (each is written there); a
source profile outside the policy whose keys are not in it blocks the profiles made
from it. The daemon puts them in `error` with the reason, and plans them again as
soon as the file changes; `credd check` reports them and exits 2.
"""

from __future__ import annotations

from credd.files.writer import FileHealth
from credd.policy.values import Policy


def blocked_by_file(policy: Policy, health: FileHealth) -> dict[str, str]:
    """Each profile the file `health` describes blocks, with why and the fix, in policy order.

    Profiles the policy itself blocks (a source found nowhere) are left to the policy.
    """
    if health.problem is not None:
        return {profile.name: health.problem for profile in policy.profiles}
    blocked: dict[str, str] = {}
    for profile in policy.profiles:
        source = profile.source_profile
        if profile.source_is_managed or profile.name in policy.blocked:
            continue
        if not health.has_keys(source):
            blocked[profile.name] = (
                f"source profile {source} has no aws_access_key_id and aws_secret_access_key"
                f" in {health.path}; add them with `aws configure --profile {source}` or"
                " `credctl import --csv FILE`"
            )
    return blocked
