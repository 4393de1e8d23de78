"""Whether anyone but the user could change the policy (credd/policy/trust.py): SPEC.md
"Files and locations". The real `credd check`, `credd run` and reloads are driven in
tests/e2e/test_policy_trust.py; here the rule itself, and load_policy in-process."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from policycases import SPEC_EXAMPLE

from credd.errors import PolicyError
from credd.policy import load_policy
from credd.policy.trust import directory_problems, judge

USER = 1000
OTHER = 4242


def info(mode: int, uid: int, *, directory: bool = False) -> os.stat_result:
    """A stat result with only what the rule reads: type and mode bits, and the owner."""
    kind = stat.S_IFDIR if directory else stat.S_IFREG
    return os.stat_result((kind | mode, 1, 1, 1, uid, 0, 0, 0, 0, 0))


# (case, mode, owner, is a directory, fragments of each problem; [] when trusted)
RULES = [
    ("file 0600 of the user", 0o600, USER, False, []),
    ("file 0644 of the user: only write matters", 0o644, USER, False, []),
    ("file 0444 of root", 0o444, 0, False, []),
    (
        "file group-writable",
        0o620,
        USER,
        False,
        [
            [
                "writable by group (mode 0620)",
                "anyone in its group could change the commands credd runs",
                "run `chmod go-w /p/f`",
            ]
        ],
    ),
    (
        "file world-writable",
        0o602,
        USER,
        False,
        [["writable by others (mode 0602)", "any other user", "run `chmod go-w /p/f`"]],
    ),
    (
        "file of another uid",
        0o600,
        OTHER,
        False,
        [["owned by uid 4242, not by you (uid 1000)", "`sudo chown 1000 /p/f`"]],
    ),
    (
        "file of another uid, writable by all",
        0o666,
        OTHER,
        False,
        [["owned by uid 4242"], ["writable by group and others (mode 0666)"]],
    ),
    ("directory 0700 of the user", 0o700, USER, True, []),
    ("directory 0755 of root", 0o755, 0, True, []),
    (
        "directory group-writable",
        0o770,
        USER,
        True,
        [
            [
                "/p/f, the policy's directory, is writable by group (mode 0770)",
                "could put another policy in its place",
                "`chmod go-w /p/f`",
            ]
        ],
    ),
    ("directory of another uid", 0o755, OTHER, True, [["owned by uid 4242"]]),
    (
        "sticky world-writable directory of root (/tmp)",
        0o1777,
        0,
        True,
        [["mode 1777", "keep the policy in a directory only you can write"]],
    ),
    (
        "sticky world-writable directory of the user",
        0o1777,
        USER,
        True,
        [["mode 1777", "keep the policy in a directory only you can write"]],
    ),
]


@pytest.mark.parametrize(
    ("mode", "owner", "directory", "expected"),
    [case[1:] for case in RULES],
    ids=[case[0] for case in RULES],
)
def test_owner_and_mode_rule(
    mode: int, owner: int, directory: bool, expected: list[list[str]]
) -> None:
    """Owned by the user or root and writable by neither group nor others, or refused with
    the owner or mode at fault and the fix."""
    found = judge("/p/f", info(mode, owner, directory=directory), uid=USER, directory=directory)
    assert len(found) == len(expected), found
    for problem, fragments in zip(found, expected, strict=True):
        for fragment in fragments:
            assert fragment in problem, problem


def test_a_path_that_needs_quoting_is_quoted_in_the_fix() -> None:
    """The fix is a command to paste: a path with a space is quoted in it."""
    [problem] = judge("/my dir/p", info(0o666, USER), uid=USER, directory=False)
    assert "`chmod go-w '/my dir/p'`" in problem


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """AWS files with the long-term keys the SPEC example starts from."""
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        "[default]\naws_access_key_id = A\naws_secret_access_key = B\n"
    )
    return {
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
        "AWS_CONFIG_FILE": str(aws / "config"),
    }


def _policy(directory: Path, *, mode: int = 0o600, dir_mode: int = 0o700) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(dir_mode)
    path = directory / "policy.yaml"
    path.write_text(SPEC_EXAMPLE + "# CANARY-policy-content\n")
    path.chmod(mode)
    return path


def _refused(path: Path, env: dict[str, str]) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env)
    assert caught.value.path == str(path)
    assert "CANARY" not in caught.value.message
    return caught.value.problems


def test_load_policy_reads_a_private_policy(tmp_path: Path, env: dict[str, str]) -> None:
    """0600 in 0700, and 0644 in 0755: read as usual."""
    assert load_policy(_policy(tmp_path / "a"), env).profiles
    assert load_policy(_policy(tmp_path / "b", mode=0o644, dir_mode=0o755), env).profiles


def test_load_policy_refuses_a_writable_file_and_directory_together(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Both problems at once, the file's first; the policy's content is never read out."""
    path = _policy(tmp_path / "d", mode=0o666, dir_mode=0o777)
    found = _refused(path, env)
    assert [p.split(" is ")[0] for p in found] == [
        str(path),
        f"{path.parent}, the policy's directory,",
    ]


def test_a_symlink_is_judged_by_its_target_and_both_directories(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """A link in a private directory to a world-writable file names the target as the
    target of the link; a link kept in a world-writable directory is refused for that
    directory, though its target is private."""
    target = _policy(tmp_path / "real", mode=0o666)
    links = tmp_path / "links"
    links.mkdir(mode=0o700)
    link = links / "policy.yaml"
    link.symlink_to(target)
    [problem] = _refused(link, env)
    assert problem.startswith(f"{target} (the target of {link}) is writable by group and others")
    assert f"`chmod go-w {target}`" in problem

    target.chmod(0o600)
    assert load_policy(link, env).profiles
    links.chmod(0o777)
    [problem] = _refused(link, env)
    assert problem.startswith(f"{links}, the policy's directory, is writable")


def test_a_file_of_another_uid_is_refused(tmp_path: Path, env: dict[str, str]) -> None:
    """Owned by someone else (chown as root): refused, naming the uid; mode unchanged."""
    path = _policy(tmp_path / "c")
    os.chown(path, OTHER, OTHER)
    [problem] = _refused(path, env)
    assert f"owned by uid {OTHER}, not by you (uid {os.getuid()}) or root" in problem
    assert (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode)) == (OTHER, 0o600)


def test_directory_problems_for_init(tmp_path: Path) -> None:
    """What `credd init` asks before writing: a directory only the user can write is fine."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    assert directory_problems(private) == []
    private.chmod(0o775)
    [problem] = directory_problems(private)
    assert "writable by group (mode 0775)" in problem
