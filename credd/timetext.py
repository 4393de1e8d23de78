"""Times as people read them in credd's output. Standard library only, and not `datetime`.

The times on the socket are all in credd's one form `2026-11-26T08:00:00Z`
(docs/protocol.md); `utc_seconds` reads that form, and only that, by integer
arithmetic. It is a shortcut that pays rent (issue 15): `datetime` (with `math` and
`operator`, which it imports) is about 2 ms of a 16 ms `credctl status`, the import
that most keeps it from its target (bench/RESULTS.md, "Shortcuts"; the bench runs
credctl with `datetime` in its place). tests/test_timetext.py holds it equal to
`datetime` on every form, valid or not.
"""

from __future__ import annotations

_SECONDS_PER_DAY = 86400
# Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar, counting
# years from March so that the leap day ends each year.
_EPOCH_DAYS = 719468
_DAYS_PER_400_YEARS = 146097
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def format_relative(seconds: float) -> str:
    """A span as people read it: `3h12m`, `45m`, `30s`; negative spans count as zero."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes = rest // 60
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m" if minutes else f"{whole}s"


def format_long(seconds: float) -> str:
    """A span that may be months long (a key's age): `89d23h` from two days up, else as
    `format_relative`."""
    whole = max(0, int(seconds))
    if whole < 2 * _SECONDS_PER_DAY:
        return format_relative(whole)
    days, rest = divmod(whole, _SECONDS_PER_DAY)
    hours = rest // 3600
    return f"{days}d{hours}h" if hours else f"{days}d"


def utc_seconds(text: str) -> int:
    """Seconds since 1970 of a UTC time in credd's form `2026-11-26T08:00:00Z`.

    ValueError for text not of that form.
    """
    if len(text) != 20 or text[4] + text[7] + text[10] + text[13] + text[16] + text[19] != "--T::Z":
        raise ValueError(f"not a UTC time of the form 2026-11-26T08:00:00Z: {text[:40]!r}")
    clock = text[11:13] + text[14:16] + text[17:19]
    if not (clock.isascii() and clock.isdigit()):
        raise ValueError(f"not a UTC time of the form 2026-11-26T08:00:00Z: {text[:40]!r}")
    hour, minute, second = int(clock[0:2]), int(clock[2:4]), int(clock[4:6])
    days = _DAYS.get(text[:10])
    if days is None:
        days = _days_of(text)
    if not (hour < 24 and minute < 60 and second < 60):
        raise ValueError(f"not a valid UTC time: {text!r}")
    return days * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second


# Days since 1970 of the dates already read: `credctl status` reads two times per profile,
# mostly of one or two dates (bench/ #2). Bounded, for a long-lived caller.
_DAYS: dict[str, int] = {}


def _days_of(text: str) -> int:
    date = text[0:4] + text[5:7] + text[8:10]
    if not (date.isascii() and date.isdigit()):
        raise ValueError(f"not a UTC time of the form 2026-11-26T08:00:00Z: {text[:40]!r}")
    year, month, day = int(date[0:4]), int(date[4:6]), int(date[6:8])
    if not (year >= 1 and 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        raise ValueError(f"not a valid UTC time: {text!r}")
    days = _days_since_1970(year, month, day)
    if len(_DAYS) < 366:
        _DAYS[text[:10]] = days
    return days


def _days_in_month(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return 29 if month == 2 and leap else _DAYS_IN_MONTH[month - 1]


def _days_since_1970(year: int, month: int, day: int) -> int:
    # Count from March: February, with its leap day, is the last month of a year.
    year -= month <= 2
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * _DAYS_PER_400_YEARS + day_of_era - _EPOCH_DAYS
