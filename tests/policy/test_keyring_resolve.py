"""The policy's sources whose keys live in the keyring (`AwsFiles.in_keyring`)."""

from __future__ import annotations

from support.fakes import make_policy

POLICY = """
version: 1
profiles:
  session-x:
    source_profile: alice
    mfa_serial: arn:aws:iam::123456789012:mfa/x
  ops:
    source_profile: alice
    role_arn: arn:aws:iam::123456789012:role/Ops
    duration: 4h
"""


def test_a_source_only_in_the_keyring_is_found_and_holds_long_term_keys() -> None:
    """No section in either file: the keyring's item is the source; a role on it is not
    a chained role (its 4h duration is kept, not capped to 1h)."""
    policy = make_policy(POLICY, {}, in_keyring={"alice"}.__contains__)
    assert not policy.problems
    assert {p.name: p.duration for p in policy.profiles}["ops"] == 4 * 3600
    assert not any("no long-term keys" in str(w) for w in policy.warnings)


def test_a_section_whose_keys_moved_to_the_keyring() -> None:
    """The section stays (its region), its keys are in the keyring: long-term all the same."""
    policy = make_policy(
        POLICY, {"alice": {"region": "eu-west-1"}}, in_keyring={"alice"}.__contains__
    )
    assert {p.name: p.duration for p in policy.profiles}["ops"] == 4 * 3600


def test_without_the_keyring_the_source_is_missing() -> None:
    """The same policy with nothing in the keyring: the source is found nowhere."""
    policy = make_policy(POLICY, {})
    assert set(policy.problems) == {"session-x", "ops"}
