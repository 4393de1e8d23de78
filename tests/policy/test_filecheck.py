"""Which profiles the credentials file blocks (credd/policy/filecheck.py): pure."""

from __future__ import annotations

from pathlib import Path

from support.fakes import LONG_TERM, make_policy

from credd.files.writer import FileHealth
from credd.policy import Policy
from credd.policy.filecheck import blocked_by_file, sources_without_file_keys

POLICY = """
version: 1
profiles:
  session-x:
    source_profile: default
    mfa_serial: arn:aws:iam::123456789012:mfa/x
  admin:
    source_profile: session-x
    role_arn: arn:aws:iam::123456789012:role/Admin
  ops:
    source_profile: ops-keys
    role_arn: arn:aws:iam::123456789012:role/Ops
"""
PATH = Path("/home/u/.aws/credentials")
KEYS = frozenset(LONG_TERM)


def policy() -> Policy:
    return make_policy(POLICY, {"default": LONG_TERM, "ops-keys": LONG_TERM})


def test_a_file_that_cannot_be_used_blocks_every_profile() -> None:
    """Unreadable, someone else's, hard-linked or unparseable: nothing could be written,
    so every profile, chained roles included, is blocked with the file's reason."""
    reason = f"{PATH}:3: section [default] appears twice (first on line 1); fix it"
    blocked = blocked_by_file(policy(), FileHealth(PATH, reason))
    assert blocked == {"session-x": reason, "admin": reason, "ops": reason}


def test_a_source_without_keys_blocks_the_profiles_made_from_it() -> None:
    """`default` lacks its secret: the MFA session on it is blocked with how to add the keys;
    the role on `ops-keys` and the role chained on the session are not (the chain waits)."""
    health = FileHealth(PATH, keys={"default": frozenset({"aws_access_key_id"}), "ops-keys": KEYS})
    blocked = blocked_by_file(policy(), health)
    assert blocked == {
        "session-x": "source profile default has no aws_access_key_id and"
        f" aws_secret_access_key in {PATH} or the keyring; add them with `aws configure"
        " --profile default`, `credctl import --csv FILE` or `credd keys add`"
    }


def test_a_source_the_keyring_holds_needs_no_keys_in_the_file() -> None:
    """`default`'s keys were moved into the keyring: the file holds none and blocks nothing;
    the sources to ask the keyring about are exactly those the file lacks."""
    health = FileHealth(PATH, keys={"default": frozenset({"region"}), "ops-keys": KEYS})
    assert sources_without_file_keys(policy(), health) == {"default"}
    assert blocked_by_file(policy(), health, in_keyring={"default"}) == {}
    assert set(blocked_by_file(policy(), health, in_keyring={"ops-keys"})) == {"session-x"}


def test_a_file_with_every_source_keyed_blocks_nothing() -> None:
    """Both sources hold an access key id and a secret: nothing is blocked."""
    health = FileHealth(PATH, keys={"default": KEYS, "ops-keys": KEYS})
    assert blocked_by_file(policy(), health) == {}
