"""Times for people (credd/timetext.py): credd's one UTC form read, and spans shown.

`utc_seconds` reads by integer arithmetic, not `datetime` (a shortcut that pays rent):
checked here against `datetime` itself, on valid times and on times that are not.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credd.credentials import format_utc
from credd.timetext import format_relative, utc_seconds


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)))
def test_utc_seconds_is_what_datetime_says(when: datetime) -> None:
    """Every time credd writes (format_utc) reads back as its POSIX timestamp."""
    aware = when.replace(microsecond=0, tzinfo=UTC)
    assert utc_seconds(format_utc(aware)) == int(aware.timestamp())


@given(
    st.tuples(
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
    )
)
def test_utc_seconds_accepts_and_refuses_what_datetime_does(
    fields: tuple[int, int, int, int, int, int],
) -> None:
    """Field values out of range (February 29th of a common year, month 13, hour 24...)
    are refused as datetime refuses them; the others read as datetime reads them."""
    year, month, day, hour, minute, second = fields
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
    try:
        expected: int | None = int(
            datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()
        )
    except ValueError:
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match="not a valid UTC time"):
            utc_seconds(text)
    else:
        assert utc_seconds(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-26",
        "2026-11-26T08:00:00",
        "2026-11-26T08:00:00+00:00",
        "2026-11-26 08:00:00Z",
        "2026-13-26T08:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-2xT08:00:00Z",
        "２026-11-26T08:00:00Z",
        "2026-11-26T08:00:00.5Z",
        "2026-02-29T08:00:00Z",
        "1900-02-29T08:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_anything_but_credds_own_form_is_a_value_error(text: str) -> None:
    """Another form is refused rather than misread."""
    with pytest.raises(ValueError, match="UTC time"):
        utc_seconds(text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0s"),
        (0, "0s"),
        (59.9, "59s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h00m"),
        (11520, "3h12m"),
        (36 * 3600, "36h00m"),
    ],
)
def test_spans_read_as_hours_and_minutes(seconds: float, shown: str) -> None:
    """Hours and minutes when an hour or more is left, minutes, else seconds."""
    assert format_relative(seconds) == shown


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (3600 * 47, "47h00m"), (86400 * 2, "2d"), (86400 * 89 + 3600 * 23 + 59, "89d23h")],
)
def test_long_spans_count_days_from_two_days_up(seconds: int, text: str) -> None:
    """A key's age and next rotation are months: `89d23h`, not `2159h`."""
    from credd.timetext import format_long

    assert format_long(seconds) == text
