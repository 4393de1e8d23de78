"""credd.files.credfile: the credentials file read as botocore reads it, edited byte-for-byte."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from botocore.configloader import raw_config_parse
from botocore.exceptions import ConfigParseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credd.credentials import Credentials
from credd.errors import CredentialsFileError
from credd.files.credfile import BOM, apply, parse

CANARY = "CANARYSECRET"
MANAGED_KEYS = (
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_security_token",
    "x_security_token_expires",
)


def botocore_read(text: str) -> dict[str, dict[str, object]] | None:
    """What botocore makes of `text` written to a file (None: it refuses the file)."""
    fd, name = tempfile.mkstemp(prefix="credfile-test-")
    try:
        os.write(fd, text.encode("utf-8"))
        os.close(fd)
        try:
            return raw_config_parse(name)  # type: ignore[no-any-return]
        except ConfigParseError:
            return None
    finally:
        os.unlink(name)


def as_botocore(parsed: Mapping[str, Mapping[str, str]]) -> dict[str, dict[str, object]]:
    """`parse`'s result with nested settings split the way botocore splits them."""
    result: dict[str, dict[str, object]] = {}
    for section, keys in parsed.items():
        result[section] = {}
        for key, value in keys.items():
            if value.startswith("\n"):
                nested = {}
                for line in value.splitlines():
                    if line.strip():
                        name, _, inner = line.strip().partition("=")
                        nested[name.strip()] = inner.strip()
                result[section][key] = nested
            else:
                result[section][key] = value
    return result


# --- parse: what is refused --------------------------------------------------

REFUSALS = [
    ("duplicate section", f"[a]\naws_secret_access_key = {CANARY}\n[a]\n", 3, "appears twice"),
    (
        "duplicate key, any case",
        f"[a]\naws_secret_access_key = {CANARY}\nAWS_Secret_Access_Key = {CANARY}2\n",
        3,
        "key 'aws_secret_access_key' appears twice in section [a]",
    ),
    ("key before any section", f"aws_secret_access_key = {CANARY}\n[a]\n", 1, "before the first"),
    ("comment then key before any section", f"# hi\n\n{CANARY}\n", 3, "before the first"),
    ("header without ]", f"[a]\nk = {CANARY}\n[b\n", 3, "broken section header"),
    ("empty header", "[a]\n[]\n", 2, "broken section header"),
    ("bare word", f"[a]\nk = v\n{CANARY}\n", 3, "not a comment, a [section] header"),
    ("no key name", f"[a]\n= {CANARY}\n", 2, "key name is missing"),
    ("no key name with colon", f"[a]\n  : {CANARY}\n", 2, "key name is missing"),
    ("nested block of non-settings", f"[a]\ns3 =\n  {CANARY}\n", 2, "nested setting"),
    ("CRLF lines counted", f"[a]\r\nk = {CANARY}\r\n[a]\r\n", 3, "appears twice"),
    ("lone CR lines counted", f"[a]\rk = {CANARY}\r[a]\r", 3, "appears twice"),
    ("BOM is not a line", f"{BOM}[a]\nk = {CANARY}\nk = {CANARY}\n", 3, "appears twice"),
    ("secret-looking key name not shown", f"[a]\n{CANARY} = 1\n{CANARY} = 2\n", 3, "a key appears"),
]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [pytest.param(t, n, r, id=name) for name, t, n, r in REFUSALS],
)
def test_parse_refuses_what_botocore_refuses_naming_the_line_never_the_value(
    text: str, line: int, reason: str
) -> None:
    """Each unparseable file is refused with its line; no value (or secret key name) leaks."""
    with pytest.raises(CredentialsFileError) as caught:
        parse(text, path="/home/u/.aws/credentials")
    error = caught.value
    assert error.line == line
    assert error.path == "/home/u/.aws/credentials"
    assert reason in error.reason
    assert f"/home/u/.aws/credentials:{line}:" in str(error)
    assert CANARY.lower() not in str(error).lower()
    if not text.startswith(BOM):
        assert botocore_read(text) is None, "botocore must refuse this file too"


def test_apply_refuses_unparseable_input_instead_of_repairing_it() -> None:
    """A file that cannot be parsed is never rewritten, even for an unrelated section."""
    with pytest.raises(CredentialsFileError):
        apply("[a]\nk = 1\n[a]\n", {"b": {"aws_access_key_id": "AKIA"}})


# --- parse: what is accepted, exactly as botocore ------------------------------


ACCEPTED = {
    "colon delimiter and key case": "[default]\nAWS_Access_Key_ID: AKIA1\n",
    "no inline comments": "[a]\nk = v # not a comment ; nor this\n",
    "text after the header's last ]": "[a] trailing\nk = 1\n[b]c] x\nj = 2\n",
    "indented comment and keys": "  # c\n[a]\n    k = 1\n    j = 2\n",
    "continuation across blank lines and comments": "[a]\nk = v\n\n  more\n# c\n  last\n\n",
    "indented header continues a value": "[a]\nk = v\n  [b]\n",
    "first delimiter wins": "[a]\nk: a=b\nj = c:d\n",
    "empty value": "[a]\nk =\nj=\n",
    "nested setting": "[a]\ns3 =\n  addressing_style = path\n  x=y\n",
    "whitespace-only lines": "[a]\n \t \nk = v\n   \n",
    "CRLF and lone CR": "[a]\r\nk = 1\rj = 2\r\n",
    "unicode": "[prøfile]\nnøkkel = væl\u00a0ue\n",
    "header with = in it": "[a=b]\nk = 1\n",
}


@pytest.mark.parametrize("text", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_parse_reads_every_quirk_as_botocore_does(text: str) -> None:
    """parse() agrees with botocore.configloader.raw_config_parse on accepted quirks."""
    assert as_botocore(parse(text)) == botocore_read(text)


def test_parse_keeps_default_section_as_written() -> None:
    """[DEFAULT] may repeat (botocore allows it); parse returns it under its own name."""
    text = "[DEFAULT]\nregion = x\n[a]\nk = 1\n[DEFAULT]\nother = y\n"
    assert parse(text) == {"DEFAULT": {"region": "x", "other": "y"}, "a": {"k": "1"}}
    with pytest.raises(CredentialsFileError, match="appears twice"):
        parse("[DEFAULT]\nk = 1\n[DEFAULT]\nk = 2\n")


def test_parse_reads_past_a_bom() -> None:
    """A UTF-8 BOM is read past (botocore itself refuses such a file)."""
    text = f"{BOM}[a]\nk = 1\n"
    assert parse(text) == {"a": {"k": "1"}}
    assert botocore_read(text) is None


_FUZZ_LINES = st.lists(
    st.tuples(
        st.text(alphabet="ab[]=:#; \t", max_size=8),
        st.sampled_from(["\n", "\r\n", "\r"]),
    ),
    max_size=8,
).map(lambda pairs: "".join(body + end for body, end in pairs))


@settings(max_examples=200, deadline=None)
@given(_FUZZ_LINES)
def test_parse_accepts_and_refuses_exactly_what_botocore_does(text: str) -> None:
    """On fuzzed files of INI punctuation, parse() and botocore agree on refusal and values."""
    expected = botocore_read(text)
    try:
        got = parse(text)
    except CredentialsFileError:
        assert expected is None
    else:
        assert as_botocore(got) == expected


# --- apply: what is kept -------------------------------------------------------


def test_replaced_keys_keep_position_and_spacing() -> None:
    """A replaced key stays on its line with its own spacing, case and delimiter."""
    text = "[s]\n  AWS_ACCESS_KEY_ID=OLD\n  region : eu\n  aws_secret_access_key :  OLD\n"
    got = apply(text, {"s": {"aws_access_key_id": "NEW", "aws_secret_access_key": "S"}})
    assert got == "[s]\n  AWS_ACCESS_KEY_ID=NEW\n  region : eu\n  aws_secret_access_key :  S\n"


def test_comments_blank_lines_and_unknown_keys_inside_section_are_kept() -> None:
    """Comments and blank lines among managed keys, and unmanaged keys, survive in order."""
    text = (
        "# top\n[s]\n; about the key\naws_access_key_id = OLD\n\n# between\n"
        "region = us-east-1\naws_session_token = OLD\n# after\n\n[t]\nk = v\n"
    )
    got = apply(text, {"s": {"aws_access_key_id": "A", "aws_session_token": "T"}})
    assert got == text.replace("id = OLD", "id = A").replace("token = OLD", "token = T")


def test_crlf_is_kept_and_used_for_new_lines() -> None:
    """A CRLF file stays CRLF, new keys and sections included."""
    text = "[s]\r\naws_access_key_id = OLD\r\n"
    got = apply(text, {"s": {"aws_access_key_id": "A", "aws_session_token": "T"}, "n": {"k": "v"}})
    assert got == "[s]\r\naws_access_key_id = A\r\naws_session_token = T\r\n\r\n[n]\r\nk = v\r\n"


def test_mixed_line_endings_are_kept_line_by_line() -> None:
    """Each untouched or replaced line keeps its own ending; new lines use the first one."""
    text = "[s]\r\nk = 1\naws_access_key_id = OLD\r\nj = 2\n"
    got = apply(text, {"s": {"aws_access_key_id": "A", "x_security_token_expires": "E"}})
    assert got == "[s]\r\nk = 1\naws_access_key_id = A\r\nj = 2\nx_security_token_expires = E\r\n"


def test_bom_is_kept() -> None:
    """A UTF-8 byte order mark stays at the start of the file."""
    got = apply(f"{BOM}[s]\nk = 1\n", {"s": {"k": "2"}, "t": {"k": "3"}})
    assert got == f"{BOM}[s]\nk = 2\n\n[t]\nk = 3\n"


@pytest.mark.parametrize(
    ("text", "updates", "expected"),
    [
        ("[s]\nk = 1", {"s": {"k": "2"}}, "[s]\nk = 2"),
        ("[s]\nk = 1", {"s": {"j": "2"}}, "[s]\nk = 1\nj = 2"),
        ("[s]\nk = 1", {"t": {"j": "2"}}, "[s]\nk = 1\n\n[t]\nj = 2"),
        ("[s]\nj = 0\nk = 1", {"s": {"k": None}}, "[s]\nj = 0"),
        ("[s]", {"s": {"k": "1"}}, "[s]\nk = 1"),
    ],
    ids=["replace", "add key", "add section", "remove last key", "header only"],
)
def test_missing_final_newline_stays_missing(
    text: str, updates: dict[str, dict[str, str | None]], expected: str
) -> None:
    """A file that did not end with a newline still does not, whatever was changed."""
    assert apply(text, updates) == expected


def test_replaced_key_loses_its_continuation_lines_and_others_keep_theirs() -> None:
    """A replaced key's indented continuation lines go with it; other keys' stay."""
    text = "[s]\nnote = a\n  b\naws_session_token = OLD1\n  OLD2\n\n# c\n  OLD3\nz = 1\n"
    got = apply(text, {"s": {"aws_session_token": "T"}})
    assert got == "[s]\nnote = a\n  b\naws_session_token = T\n\n# c\nz = 1\n"
    assert parse(got)["s"] == {"note": "a\nb", "aws_session_token": "T", "z": "1"}


def test_stale_security_token_is_removed_with_the_rest_of_the_credentials() -> None:
    """Writing Credentials.as_file_keys() removes aws_security_token so it cannot shadow."""
    text = "[s]\naws_access_key_id = OLD\naws_security_token = STALE\n  STALE2\nregion = x\n"
    keys = Credentials("ASIANEW", "SECRET", "TOKEN").as_file_keys()
    got = apply(text, {"s": keys})
    assert "STALE" not in got
    assert parse(got) == {
        "s": {
            "aws_access_key_id": "ASIANEW",
            "region": "x",
            "aws_secret_access_key": "SECRET",
            "aws_session_token": "TOKEN",
        }
    }


def test_new_keys_go_after_the_last_key_before_trailing_comments() -> None:
    """New keys follow the section's last key (and its continuation), not its trailing lines."""
    text = "[s]\n  k = 1\n    more\n\n# about t\n[t]\nj = 2\n"
    got = apply(text, {"s": {"aws_access_key_id": "A"}})
    assert got == "[s]\n  k = 1\n    more\n  aws_access_key_id = A\n\n# about t\n[t]\nj = 2\n"


def test_new_key_in_empty_section_stays_clear_of_an_indented_next_header() -> None:
    """A key added under a bare header must not turn an indented next header into its value."""
    got = apply("[s]\n  [t]\n", {"s": {"k": "v"}})
    assert parse(got) == {"s": {"k": "v"}, "t": {}}


def test_new_section_goes_at_the_end_after_one_blank_line() -> None:
    """A missing section is appended after a blank line (none added after an existing one)."""
    assert apply("[a]\nk = 1\n", {"b": {"k": "2"}}) == "[a]\nk = 1\n\n[b]\nk = 2\n"
    assert apply("[a]\nk = 1\n\n", {"b": {"k": "2"}}) == "[a]\nk = 1\n\n[b]\nk = 2\n"
    assert apply("# only a comment\n", {"b": {"k": "2"}}) == "# only a comment\n\n[b]\nk = 2\n"
    assert apply("", {"b": {"k": "2"}, "c": {"k": "3"}}) == "[b]\nk = 2\n\n[c]\nk = 3\n"


def test_removing_keys_that_are_not_there_changes_nothing() -> None:
    """None for an absent key or section changes no byte and creates no empty section."""
    text = "[a]\r\nk = 1"
    assert apply(text, {"a": {"x": None}, "b": {"aws_security_token": None}}) == text


def test_empty_value_is_written_and_replaced_cleanly() -> None:
    """An empty value is written as `key =` and a key with an empty value can be set."""
    assert apply("[a]\nk =\n", {"a": {"k": "v", "j": ""}}) == "[a]\nk = v\nj =\n"


@pytest.mark.parametrize(
    "updates",
    [
        {"a": {"k": f"{CANARY}\nx"}},
        {"a": {"k": f"{CANARY}\r"}},
        {"a": {"k": f" {CANARY}"}},
        {"a": {"K": "v"}},
        {"a": {"k=j": "v"}},
        {"a": {"#k": "v"}},
        {"DEFAULT": {"k": "v"}},
        {"a\nb": {"k": "v"}},
        {"": {"k": "v"}},
    ],
)
def test_updates_that_would_not_read_back_are_programming_errors(
    updates: dict[str, dict[str, str | None]],
) -> None:
    """A value with a line break, a non-plain key, [DEFAULT] or a bad name is a ValueError."""
    with pytest.raises(ValueError) as caught:
        apply("[a]\nk = 1\n", updates)
    assert CANARY not in str(caught.value)


# --- properties over generated files ---------------------------------------------


@dataclass(frozen=True)
class GeneratedFile:
    """A botocore-valid credentials file built from parts, and its line ending."""

    text: str
    eol: str
    sections: tuple[str, ...]


_NAMES = st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True)
_KEY_NAMES = st.one_of(st.sampled_from(MANAGED_KEYS), st.from_regex(r"[a-z_]{1,8}", fullmatch=True))
_FREE_TEXT = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
    max_size=12,
)
_SEPARATORS = st.sampled_from([" = ", "=", ": ", " =  ", "\t=\t"])


@st.composite
def credentials_files(draw: st.DrawFn) -> GeneratedFile:
    """Random sections, keys, continuations, comments, blank lines, endings, BOM."""
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lines: list[str] = []

    def filler() -> None:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(
                draw(
                    st.one_of(
                        st.sampled_from(["", "  ", "\t"]),
                        st.builds(
                            lambda i, p, t: i + p + t,
                            st.sampled_from(["", "  "]),
                            st.sampled_from(["#", ";"]),
                            _FREE_TEXT,
                        ),
                    )
                )
            )

    filler()
    sections = draw(st.lists(_NAMES, unique=True, max_size=4))
    for section in sections:
        lines.append(f"[{section}]")
        indent = draw(st.sampled_from(["", "  "]))
        filler()
        for key in draw(st.lists(_KEY_NAMES, unique=True, max_size=5)):
            value = draw(_FREE_TEXT)
            lines.append(f"{indent}{key}{draw(_SEPARATORS)}{value}")
            if value.strip():
                for _ in range(draw(st.integers(0, 2))):
                    more = draw(_FREE_TEXT.filter(lambda t: t.strip()[:1] not in ("", "#", ";")))
                    lines.append(f"{indent}    {more}")
            filler()
    text = eol.join(lines)
    if draw(st.booleans()) and lines:
        text += eol
    if draw(st.booleans()):
        text = BOM + text
    return GeneratedFile(text, eol, tuple(sections))


_VALUES = st.one_of(
    st.none(),
    st.from_regex(r"[A-Za-z0-9/+=]{1,80}", fullmatch=True),
    _FREE_TEXT.map(str.strip).filter(lambda v: v == v.strip()),
)


@st.composite
def file_and_updates(
    draw: st.DrawFn,
) -> tuple[GeneratedFile, dict[str, dict[str, str | None]]]:
    """A generated file and updates of managed keys in some of its sections and new ones."""
    generated = draw(credentials_files())
    names = draw(
        st.lists(
            st.one_of(st.sampled_from(generated.sections), _NAMES)
            if generated.sections
            else _NAMES,
            unique=True,
            max_size=3,
        )
    )
    updates = {
        name: draw(st.dictionaries(st.sampled_from(MANAGED_KEYS), _VALUES, max_size=5))
        for name in names
    }
    return generated, updates


def _lines(text: str) -> list[tuple[str, str]]:
    return re.findall(r"([^\r\n]*)(\r\n|\n|$)", text.removeprefix(BOM))[:-1] or []


def _unmanaged_lines(text: str, updates: Mapping[str, Mapping[str, object]]) -> list[list[str]]:
    """The lines of a generated-shape file minus managed key lines and their continuations.

    An independent reading of the generator's shape: headers at column 0,
    keys at their section's indent, continuations deeper, comments anywhere.
    Returns [body, ending] pairs.
    """
    kept: list[list[str]] = []
    section: str | None = None
    key_indent = -1
    dropping = False
    for body, ending in _lines(text):
        stripped = body.strip()
        indent = len(body) - len(body.lstrip())
        if stripped.startswith(("#", ";")) or not stripped:
            kept.append([body, ending])
            continue
        if body.startswith("["):
            section, key_indent, dropping = body[1:-1], -1, False
        elif key_indent >= 0 and indent > key_indent:
            if dropping:
                continue
        else:
            key_indent = indent
            key = re.split(r"\s*[=:]", stripped, maxsplit=1)[0].lower()
            dropping = section is not None and key in updates.get(section, {})
            if dropping:
                continue
        kept.append([body, ending])
    return kept


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_and_updates())
def test_apply_changes_no_line_outside_the_managed_keys(
    case: tuple[GeneratedFile, dict[str, dict[str, str | None]]],
) -> None:
    """Property: minus managed key lines, the file is unchanged (new sections only appended)."""
    generated, updates = case
    after = apply(generated.text, updates)
    before_kept = _unmanaged_lines(generated.text, updates)
    after_kept = _unmanaged_lines(after, updates)
    assert after.startswith(BOM) == generated.text.startswith(BOM)
    # The old last line may gain an ending (lines appended) or lose it (its
    # key removed, the file still without a final newline): compare bodies there.
    if before_kept:
        assert [b for b, _ in after_kept[: len(before_kept)]] == [b for b, _ in before_kept]
        assert after_kept[: len(before_kept) - 1] == before_kept[:-1]
    appended = after_kept[len(before_kept) :]
    new_sections = {name for name in updates if name not in generated.sections}
    assert all(body == "" or body[1:-1] in new_sections for body, _ in appended)
    eol = generated.eol if re.search(r"[\r\n]", generated.text) else "\n"
    assert all(ending in ("", eol) for _, ending in appended)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file_and_updates())
def test_botocore_reads_back_exactly_what_was_written(
    case: tuple[GeneratedFile, dict[str, dict[str, str | None]]],
) -> None:
    """Property: botocore reads the written values, token and all, and every other one unchanged."""
    generated, updates = case
    # botocore refuses a BOM; what follows it is what it is asked to read here.
    before = botocore_read(generated.text.removeprefix(BOM))
    assert before is not None
    assert as_botocore(parse(generated.text)) == before
    expected = {section: dict(keys) for section, keys in before.items()}
    for section, keys in updates.items():
        if section not in expected and all(value is None for value in keys.values()):
            continue
        target = expected.setdefault(section, {})
        for key, value in keys.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
    after = apply(generated.text, updates)
    assert botocore_read(after.removeprefix(BOM)) == expected
    assert as_botocore(parse(after)) == expected
    assert apply(after, updates) == after, "applying the same update twice changes nothing more"
