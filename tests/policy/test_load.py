"""Reading the policy (credd/policy/load.py): the file, YAML with safe_load only, a key
written twice, and syntax errors located by line and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from policycases import (
    SPEC_EXAMPLE,
    P,
    S,
    problems,
)

from credd.errors import PolicyError
from credd.policy import load_policy


def test_yaml_syntax_error_gives_line_and_column(env: dict[str, str], tmp_path: Path) -> None:
    """A YAML syntax error is located 1-based, as editors count, and is the only problem."""
    found = problems("version: 1\ndefaults: {}\nprofiles:\n  a: b: c\n", env, tmp_path)
    assert found == ["line 4, column 7: mapping values are not allowed here"]


def test_yaml_tab_indent_is_located(env: dict[str, str], tmp_path: Path) -> None:
    """A tab where YAML wants spaces is a located error too."""
    found = problems("version: 1\nprofiles:\n  a:\n\tsource_profile: x\n", env, tmp_path)
    assert found[0].startswith("line 4, column 1: ")


def test_python_object_tag_is_refused_without_running_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """safe_load only: a `!!python/object` document is a located error, and nothing runs."""
    marker = tmp_path / "pwned"
    found = problems(
        P + "  s:\n" + S + f"    region: !!python/object/apply:os.system ['touch {marker}']\n",
        env,
        tmp_path,
    )
    assert found[0].startswith("line 6, column 13: could not determine a constructor")
    assert not marker.exists()


BILLION_LAUGHS = """\
version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
profiles:
  s:
    source_profile: default
    code_command: *i
    notify: *i
    region: *i
"""


@pytest.mark.timeout(20)
def test_billion_laughs_is_refused_without_expanding(env: dict[str, str], tmp_path: Path) -> None:
    """Nested aliases are never expanded (a billion strings would not fit in memory, and
    the timeout ends a run that tried): the document is refused with located problems."""
    found = problems(BILLION_LAUGHS, env, tmp_path)
    assert (
        "a: unknown key; expected one of version, defaults, credentials_file, profiles,"
        " endpoint_port" in found
    )
    assert "profiles.s.code_command[0]: must be a string, not a list (quote it)" in found
    assert "profiles.s.region: must be a string, not a list (quote it)" in found
    assert all(len(p) < 300 for p in found)


def test_deep_nesting_is_refused_not_a_crash(env: dict[str, str], tmp_path: Path) -> None:
    """A document nested deeper than Python's recursion limit is an error, not a traceback."""
    found = problems("version: 1\nprofiles: " + "[" * 100_000, env, tmp_path)
    assert found == ["top level: nested too deeply to be a policy"]


def test_load_policy_reads_the_file(env: dict[str, str], tmp_path: Path) -> None:
    """load_policy reads UTF-8 (a BOM is tolerated) and parses it."""
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SPEC_EXAMPLE.encode())
    assert load_policy(path, env).path == path


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing", "does not exist"),
        ("directory", "is a directory"),
        ("latin-1", "not UTF-8"),
        ("huge", "larger than"),
    ],
)
def test_load_policy_refuses_an_unusable_file(
    env: dict[str, str], tmp_path: Path, setup: str, fragment: str
) -> None:
    """A file that cannot be read is a PolicyError naming the file, like any invalid policy."""
    path = tmp_path / "policy.yaml"
    if setup == "directory":
        path.mkdir()
    elif setup == "latin-1":
        path.write_bytes("version: 1 # caf\xe9\n".encode("latin-1"))
    elif setup == "huge":
        path.write_text("#" * (2 << 20))
    with pytest.raises(PolicyError) as caught:
        load_policy(path, env)
    assert caught.value.path == str(path)
    assert fragment in caught.value.problems[0]
