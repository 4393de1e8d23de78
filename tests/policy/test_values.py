"""The policy's values (credd/policy/values.py and the steps' own): reprs keep secrets."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest
from policycases import P, R

from credd.files.lookup import AwsFiles
from credd.policy import load, resolve, summary, validate, values
from credd.policy.load import parse_yaml
from credd.policy.resolve import resolve as resolve_entries
from credd.policy.validate import Entry
from credd.policy.validate import validate as validate_document
from credd.policy.values import Policy, Problem, Profile
from credd.states import Kind

CANARY = "Canary3xternalId"
# Fields that hold a secret wherever they appear (CONVENTIONS 15).
SECRET_FIELDS = {"external_id"}
MODULES = (load, validate, resolve, values, summary)


def _aws() -> AwsFiles:
    return AwsFiles.from_sections(
        config_path=Path("/nowhere/config"),
        credentials_path=Path("/nowhere/credentials"),
        config_sections={"default": {"region": "eu-west-1"}},
        credentials_sections={"default": {"aws_access_key_id": "A", "aws_secret_access_key": "B"}},
    )


def test_profile_repr_masks_the_external_id() -> None:
    """A Profile's repr names every setting but the external id."""
    profile = Profile(
        name="r",
        kind=Kind.ROLE,
        source_profile="default",
        mfa_serial=None,
        role_arn="arn:aws:iam::123456789012:role/Admin",
        role_session_name="credd-r",
        external_id=CANARY,
        duration=3600,
        requested_duration=3600,
        refresh_before=900,
        region="us-east-1",
        code_command=None,
        notify=None,
        source_is_managed=False,
    )
    assert CANARY not in repr(profile)
    assert "role/Admin" in repr(profile)


def test_entry_repr_masks_the_external_id() -> None:
    """An entry as written (validate's value) hides its external id too."""
    entry = Entry(name="r", is_role=True, source_profile="default", external_id=CANARY)
    assert CANARY not in repr(entry)
    assert "source_profile='default'" in repr(entry)


def test_no_value_made_from_a_policy_shows_its_external_id() -> None:
    """Every value of every step (validate's, resolve's, the Policy) keeps the id out."""
    text = P + "  r:\n" + R + f"    external_id: {CANARY}\n"
    document, unreadable = parse_yaml(text)
    assert unreadable == []
    checked = validate_document(document, path=Path("/nowhere/policy.yaml"), env={})
    resolved = resolve_entries(checked, _aws(), {})
    policy = Policy(
        path=Path("/nowhere/policy.yaml"),
        credentials_file=checked.credentials_file,
        profiles=resolved.profiles,
    )
    assert policy.profiles[0].external_id == CANARY
    for value in (checked, *checked.entries.values(), resolved, policy, *policy.profiles):
        assert CANARY not in repr(value), type(value).__name__


def test_every_secret_field_is_left_out_of_reprs() -> None:
    """Any dataclass of the policy package with a secret field leaves it out of its repr,
    so a value added later cannot show one by default."""
    classes = [
        cls
        for module in MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == module.__name__
    ]
    assert {Entry, Profile} <= set(classes)
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.name in SECRET_FIELDS:
                assert not field.repr, f"{cls.__name__}.{field.name} shows in repr"


def test_problem_reads_as_place_then_message() -> None:
    """A problem is `place: message`; one with no place (a note on an AWS file) is its text."""
    assert str(Problem("profiles.r.duration", "out of range", "r")) == (
        "profiles.r.duration: out of range"
    )
    assert str(Problem("", "/x/config:3: cannot be parsed")) == "/x/config:3: cannot be parsed"


def test_policy_text_views_follow_the_structured_problems() -> None:
    """`warnings` and `problems` are the notes and blocked profiles as people read them."""
    policy = Policy(
        path=Path("/p"),
        credentials_file=Path("/c"),
        profiles=(),
        notes=(Problem("profiles.r.duration", "2h capped to 1h", "r"),),
        blocked={
            "r": (
                Problem("profiles.r.source_profile", "'ghost' is nowhere", "r"),
                Problem("profiles.r", "keys in the way", "r"),
            )
        },
    )
    assert policy.warnings == ("profiles.r.duration: 2h capped to 1h",)
    assert dict(policy.problems) == {
        "r": "profiles.r.source_profile: 'ghost' is nowhere; profiles.r: keys in the way"
    }


def test_parse_steps_do_no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """parse_yaml, validate and resolve are pure: with every file call refusing, they work."""
    text = (
        P
        + "  s:\n    source_profile: default\n    mfa_serial: GAHT12345678\n"
        + "  r:\n    source_profile: s\n    role_arn: arn:aws:iam::123456789012:role/Admin\n"
        + "credentials_file: ~/creds\n"
    )
    aws = _aws()

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"I/O during a pure step: {args}")

    import builtins
    import io
    import os

    for owner, name in (
        (builtins, "open"),
        (io, "open"),
        (os, "open"),
        (os, "stat"),
        (os, "lstat"),
        (os, "listdir"),
        (os, "scandir"),
    ):
        monkeypatch.setattr(owner, name, refuse)
    document, unreadable = parse_yaml(text)
    checked = validate_document(document, path=Path("/nowhere/policy.yaml"), env={"HOME": "/h"})
    resolved = resolve_entries(checked, aws, {})
    monkeypatch.undo()
    assert (unreadable, checked.errors, resolved.errors) == ([], (), ())
    assert checked.credentials_file == Path("/h/creds")
    assert [p.name for p in resolved.profiles] == ["s", "r"]
    assert resolved.profiles[0].region == "eu-west-1"
