"""The policy file: which profiles credd keeps fresh, and how each is made.

`load_policy` reads the file and `parse_policy` makes a `Policy` of its text,
in three steps, one module each:

- `load`: the file's bytes and the YAML document (`yaml.safe_load` only; a key
  written twice, and a syntax error located by line and column);
- `validate`: the policy's own rules on that document (pure);
- `resolve`: each profile against the AWS config and credentials files (pure
  given them: mfa_serial, region, source profiles, chains).

`values` holds what they make (`Policy`, `Profile`, `Problem`) and `summary`
what `credd check` prints. Every problem is collected and raised together in
one `PolicyError`, each naming its place (`profiles.prod-admin.duration`) and,
for YAML syntax errors, the line and column. A `source_profile` found neither
in the policy nor in the AWS files is not an error of the policy but a
problem of that one profile (`Policy.problems`): `credd check` reports it
and exits 2, a running daemon puts only that profile in `error`.

How each setting is chosen when the profile leaves it out:

- `duration`: `defaults.duration` for MFA sessions, else 12h; roles default
  to 1h (AWS's default and a role's default maximum) and do not inherit
  `defaults.duration`, since asking more than the role allows fails.
  A role chained on a session (its source is managed by credd, or holds
  temporary credentials) is capped to 1h with a warning.
- `refresh_before`: `defaults.refresh_before`, else 15m; a lead inherited so that
  it is longer than half the duration is capped to half, with a warning (a lead
  set on the profile itself must only be shorter than the duration).
- `mfa_serial` (MFA sessions only): the source profile's `mfa_serial` in
  the AWS config file, else in its credentials section.
- `region`: the profile's `region`, then `defaults.region`, then the
  `AWS_REGION` and `AWS_DEFAULT_REGION` environment variables, then the
  `region` of the root source profile in the AWS config file (the chain is
  followed to the profile that holds long-term keys), then the partition's
  usual STS region (`us-east-1`; `cn-north-1` and `us-gov-west-1` for ARNs
  in the China and GovCloud partitions).
- `role_session_name`: `credd-<profile name>`, with characters AWS refuses
  replaced by `-`, cut to 64.
- `code_command`, `notify`: `defaults`, else none.
- `credentials_file`: the policy's key (`~` expanded; a relative path is
  taken from the policy file's directory), then `AWS_SHARED_CREDENTIALS_FILE`,
  then `~/.aws/credentials`.
- `endpoint_port`: the local credentials endpoint's port on 127.0.0.1; 0 (the
  default) lets the system choose a free one when the first token is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType

from credd.errors import PolicyError
from credd.files.lookup import AwsFiles
from credd.partitions import DEFAULT_REGION
from credd.policy.load import MAX_POLICY_BYTES, parse_yaml, read_policy
from credd.policy.resolve import REFRESH_BEFORE_DEFAULT
from credd.policy.resolve import resolve as resolve_profiles
from credd.policy.summary import format_summary
from credd.policy.validate import (
    DEFAULT_KEYS,
    NOTIFY_PLACEHOLDERS,
    POLICY_VERSION,
    PROFILE_KEYS,
    ROLE_ARN,
    ROLE_CHAINED_MAX,
    ROLE_DEFAULT,
    ROLE_MAX,
    ROLE_MIN,
    SESSION_DEFAULT,
    SESSION_MAX,
    SESSION_MIN,
    TOP_KEYS,
    mfa_serial_problem,
    section_name_problem,
)
from credd.policy.validate import validate as validate_document
from credd.policy.values import Policy, Problem, Profile, join_problems

__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_REGION",
    "MAX_POLICY_BYTES",
    "NOTIFY_PLACEHOLDERS",
    "POLICY_VERSION",
    "PROFILE_KEYS",
    "REFRESH_BEFORE_DEFAULT",
    "ROLE_ARN",
    "ROLE_CHAINED_MAX",
    "ROLE_DEFAULT",
    "ROLE_MAX",
    "ROLE_MIN",
    "SESSION_DEFAULT",
    "SESSION_MAX",
    "SESSION_MIN",
    "TOP_KEYS",
    "Policy",
    "Problem",
    "Profile",
    "format_summary",
    "load_policy",
    "mfa_serial_problem",
    "parse_policy",
    "section_name_problem",
]


def load_policy(
    path: Path,
    env: Mapping[str, str] = os.environ,
    *,
    in_keyring: Callable[[str], bool] | None = None,
) -> Policy:
    """Read and parse the policy at `path`; a missing or unreadable file is a PolicyError.

    `in_keyring(name)`: whether the OS keyring holds keys for a source profile.
    """
    return parse_policy(read_policy(path), path=path, env=env, in_keyring=in_keyring)


def parse_policy(
    text: str,
    *,
    path: Path,
    aws: AwsFiles | None = None,
    env: Mapping[str, str],
    in_keyring: Callable[[str], bool] | None = None,
) -> Policy:
    """Validate the policy `text` and resolve every profile's settings.

    `aws` is what the AWS files say; when None they are read from the policy's
    credentials file and `AWS_CONFIG_FILE` (the only I/O here). Raises one
    PolicyError holding every problem found.
    """
    document, unreadable = parse_yaml(text)
    if unreadable:
        raise _invalid(path, unreadable)
    checked = validate_document(document, path=path, env=env)
    if checked.errors and not checked.entries:
        raise _invalid(path, checked.errors)  # nothing to resolve: the AWS files are not read
    if aws is None:
        if in_keyring is None:
            aws = AwsFiles.load(checked.credentials_file, env)
        else:
            aws = AwsFiles.load(checked.credentials_file, env, in_keyring)
    resolved = resolve_profiles(checked, aws, env)
    errors = [*checked.errors, *resolved.errors]
    if errors:
        raise _invalid(path, errors, resolved.blocked, file_order=list(checked.entries))
    return Policy(
        path=path,
        credentials_file=checked.credentials_file,
        profiles=resolved.profiles,
        notes=(*checked.warnings, *(Problem("", note) for note in aws.notes), *resolved.warnings),
        blocked=MappingProxyType(dict(resolved.blocked)),
        endpoint_port=checked.endpoint_port,
    )


def _invalid(
    path: Path,
    errors: Iterable[Problem],
    blocked: Mapping[str, tuple[Problem, ...]] | None = None,
    *,
    file_order: list[str] | None = None,
) -> PolicyError:
    """Every problem, grouped as the file reads: top-level places, then each profile in turn."""
    rank = {name: index + 1 for index, name in enumerate(file_order or [])}
    found = [(problem.profile, str(problem)) for problem in errors]
    found += [(name, join_problems(problems)) for name, problems in (blocked or {}).items()]
    found.sort(key=lambda item: rank.get(item[0], 0) if item[0] is not None else 0)
    return PolicyError(str(path), [text for _, text in found])
