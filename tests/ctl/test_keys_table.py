"""`credctl status` shows each long-term key under the profiles: its age, its next
rotation, and a rotation in progress or blocked with why (credd/ctl/main.py)."""

from __future__ import annotations

from credd.ctl.main import keys_table
from credd.timetext import utc_seconds

NOW = utc_seconds("2026-11-26T08:00:00Z")


def key(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "profile": "default",
        "key_id": "****WXYZ",
        "created_at": "2026-09-01T08:00:00Z",
        "checked_at": "2026-11-26T07:00:00Z",
        "rotated_at": None,
        "rotate_every": 90 * 86400,
        "next_rotation": "2026-11-30T08:00:00Z",
        "rotation": "idle",
        "reason": None,
    }
    return {**base, **changes}


def test_age_and_next_rotation_in_days() -> None:
    lines = keys_table([key()], NOW).splitlines()
    assert lines[0].split() == ["KEY", "OF", "KEY", "AGE", "NEXT", "ROTATION", "ROTATION"]
    assert lines[1].split() == ["default", "****WXYZ", "86d", "in", "4d", "idle"]


def test_a_due_key_and_one_without_rotate_every() -> None:
    text = keys_table(
        [
            key(next_rotation="2026-11-20T08:00:00Z", rotation="rotating"),
            key(profile="ci", rotate_every=None, next_rotation=None),
        ],
        NOW,
    )
    assert "due" in text and "rotating" in text
    assert "off (no rotate_every)" in text


def test_blocked_says_why_on_one_line() -> None:
    reason = "the IAM user of default already has two access keys\n(****WXYZ and ****ABCD)"
    text = keys_table([key(rotation="blocked", reason=reason)], NOW)
    assert "blocked: the IAM user of default already has two access keys (****WXYZ" in text
    assert len(text.splitlines()) == 2
