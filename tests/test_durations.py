"""Durations as the policy writes them (credd/durations.py)."""

from __future__ import annotations

import pytest

from credd.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("12h", 43_200),
        ("90m", 5_400),
        ("1h30m", 5_400),
        ("45s", 45),
        ("1h30m15s", 5_415),
        ("36h", 129_600),
        ("90d", 7_776_000),
        ("1d12h", 129_600),
        ("0s", 0),
        (3_600, 3_600),
        (0, 0),
    ],
)
def test_parse_accepts_the_forms_of_the_spec(value: object, seconds: int) -> None:
    """SPEC durations: "12h", "90m", "1h30m", "45s", "90d", or an integer of seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, "boolean"),
        (-5, "negative"),
        (1.5, "float"),
        (None, "NoneType"),
        (["1h"], "list"),
        ("", "empty"),
        ("3600", "no unit"),
        ("12H", "not a duration"),
        ("30m1h", "not a duration"),
        ("1h1h", "not a duration"),
        ("12 h", "not a duration"),
        (" 12h", "not a duration"),
        ("h", "not a duration"),
        ("١٢h", "not a duration"),
        ("１２h", "not a duration"),
    ],
)
def test_parse_refuses_with_a_reason(value: object, reason: str) -> None:
    """Anything else is a ValueError saying why; non-ASCII digits never count as digits."""
    with pytest.raises(ValueError, match=reason):
        parse_duration(value)


def test_parse_cuts_a_long_value_short_in_its_message() -> None:
    """A pasted blob is quoted only in part, so the message stays one readable line."""
    with pytest.raises(ValueError) as caught:
        parse_duration("x" * 500)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (43_200, "12h"),
        (5_400, "1h30m"),
        (45, "45s"),
        (3_661, "1h1m1s"),
        (0, "0s"),
        (129_600, "36h"),
    ],
)
def test_format_writes_what_a_policy_would(seconds: int, text: str) -> None:
    """Summaries show durations the way a person writes them, and they parse back."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_format_refuses_negative() -> None:
    """A negative duration is a bug in the caller, not something to print."""
    with pytest.raises(ValueError, match="negative"):
        format_duration(-1)
