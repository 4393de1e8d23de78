"""`rotate_every` (SPEC.md): on a profile whose source holds long-term keys, or in
`defaults`; days accepted; too short, or on a chained profile, an error naming the place."""

from __future__ import annotations

from pathlib import Path

from policycases import DEVICE, ROLE, SPEC_EXAMPLE, P, R, S, parse, problems


def test_rotate_every_on_a_session_takes_days(env: dict[str, str], tmp_path: Path) -> None:
    policy = parse(P + "  s:\n" + S + "    rotate_every: 90d\n", env, tmp_path)
    assert policy.profiles[0].rotate_every == 90 * 86400


def test_defaults_give_it_to_the_profiles_on_long_term_keys_only(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The session on the IAM user's keys inherits it; the role chained on the session
    does not (its source holds no key to rotate)."""
    text = SPEC_EXAMPLE.replace("defaults:\n", "defaults:\n  rotate_every: 30d\n")
    policy = parse(text, env, tmp_path)
    session, role = policy.get("session-MFADeviceName"), policy.get("prod-admin")
    assert session is not None and role is not None
    assert session.rotate_every == 30 * 86400
    assert role.rotate_every is None


def test_a_role_on_long_term_keys_may_rotate_them(env: dict[str, str], tmp_path: Path) -> None:
    policy = parse(P + "  r:\n" + R + "    rotate_every: 1d12h\n", env, tmp_path)
    assert policy.profiles[0].rotate_every == 36 * 3600


def test_too_often_is_an_error_naming_the_place(env: dict[str, str], tmp_path: Path) -> None:
    found = problems(P + "  s:\n" + S + "    rotate_every: 30m\n", env, tmp_path)
    assert any(
        "profiles.s.rotate_every: 30m is too often to rotate a long-term key" in p for p in found
    ), found


def test_on_a_chained_profile_it_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    text = (
        P
        + "  s:\n"
        + S
        + f"  r:\n    source_profile: s\n    role_arn: {ROLE}\n    rotate_every: 90d\n"
    )
    found = problems(text, env, tmp_path)
    assert any(
        "profiles.r.rotate_every: s is managed by credd and holds no long-term key" in p
        for p in found
    ), found


def test_not_a_duration_is_an_error(env: dict[str, str], tmp_path: Path) -> None:
    found = problems(P + "  s:\n" + S + "    rotate_every: quarterly\n", env, tmp_path)
    assert any("profiles.s.rotate_every: 'quarterly' is not a duration" in p for p in found)
    assert DEVICE  # the device is the policycases' one
