"""Reading and editing the AWS credentials file as text: pure, no I/O. Standard library only.

`parse` reads the file the way botocore does (`configparser.RawConfigParser`
with its defaults, as `botocore.configloader.raw_config_parse` uses it) and
refuses everything botocore would refuse. `apply` changes only the keys it is
given and keeps every other character of the file: comments, blank lines,
order, other sections, unknown keys, indentation, line endings (CRLF, LF or a
mix), a UTF-8 byte order mark and a missing final newline.

What botocore accepts, and so what this module accepts:

- comments are lines whose first non-blank character is `#` or `;` (there are
  no inline comments: `key = a # b` has the value `a # b`);
- a section header is `[name]` after stripping the line; anything after the
  last `]` is ignored, and the name is case-sensitive;
- a key line is `name = value` or `name: value`, split at the first `=` or
  `:`; key names are case-insensitive (botocore lowercases them) and values
  are stripped;
- a line indented deeper than the key line above it continues that key's
  value, even across blank lines and comments; a key with an empty value and
  continuation lines is a nested setting, whose lines must be `name = value`;
- a section or a key (within a section) may appear only once; `[DEFAULT]` is
  the exception botocore makes for sections (its keys are inherited by every
  section; `parse` returns them as written, under "DEFAULT").

Lines end at `\\n`, `\\r\\n` or a lone `\\r`, as in Python's text mode.

Known difference: botocore refuses a file that starts with a UTF-8 byte
order mark; this module reads past it and keeps it, so that credd never
changes bytes it does not own.

No error message ever holds a value from the file: values may be secrets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from credd.errors import CredentialsFileError

BOM = "\ufeff"
DEFAULT_SECTION = "DEFAULT"

# The three patterns below are configparser's own (RawConfigParser.SECTCRE,
# _OPT_TMPL with the default delimiters, NONSPACECRE), so that this module
# and botocore split every line the same way.
_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$")
_NONSPACE = re.compile(r"\S")
_COMMENT_PREFIXES = ("#", ";")
_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n)")
# Key names shown in error messages. Anything else (a pasted secret that
# happens to hold an `=`) is called "a key", because names are not vetted.
_SHOWABLE_KEY = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")


class _Kind(Enum):
    BLANK = "blank"
    COMMENT = "comment"
    HEADER = "header"
    KEY = "key"
    CONTINUATION = "continuation"


@dataclass(frozen=True)
class _Line:
    """One physical line and what botocore makes of it."""

    number: int  # 1-based, as botocore counts (the BOM is not a line)
    body: str = field(repr=False)  # without its line ending; may hold a secret
    ending: str  # "\n", "\r\n", "\r", or "" for a last line without one
    kind: _Kind
    section: str | None  # the section the line belongs to (a header: its own)
    key: str | None = None  # KEY: its lowercased name; CONTINUATION: the key it continues
    delimiter_end: int = 0  # KEY: where the `=` or `:` ends in body
    value_start: int = 0  # KEY: where the value starts in body
    value_empty: bool = False  # KEY: nothing after the delimiter
    spaced: bool = False  # KEY: whitespace before the delimiter

    @property
    def indent(self) -> str:
        """The leading whitespace of the line."""
        return self.body[: len(self.body) - len(self.body.lstrip())]


@dataclass(frozen=True)
class _Scan:
    bom: bool
    lines: tuple[_Line, ...]
    values: dict[str, dict[str, str]] = field(repr=False)  # secrets among them


def parse(text: str, *, path: str = "<credentials>") -> dict[str, dict[str, str]]:
    """Read a credentials file: section name -> lowercased key -> stripped value.

    Multi-line values are joined with `\\n`, as botocore joins them (a nested
    setting such as `s3 =` followed by indented lines stays one string).
    Raises `CredentialsFileError(path, line, reason)` for anything botocore
    would refuse; the reason never holds a value.
    """
    return _scan(text, path).values


def apply(
    text: str,
    updates: Mapping[str, Mapping[str, str | None]],
    *,
    path: str = "<credentials>",
) -> str:
    """Return `text` with `updates` applied: section -> key -> value, None removes the key.

    Only the lines of the named keys change. A key that exists is replaced
    where it stands (keeping its indentation, its spelling and the spacing
    around its delimiter) and loses its continuation lines; a new key goes
    right after the last key line of its section; a new section goes at the
    end of the file after a blank line. New lines use the file's first line
    ending (LF for a file with none). A file that did not end with a newline
    still does not.

    Raises `CredentialsFileError` when `text` cannot be parsed (it is never
    repaired), and `ValueError` for an update that could not be read back
    as written (a value with a line break or surrounding whitespace, a key
    that is not a plain lowercase name, the `DEFAULT` section).
    """
    _check_updates(updates)
    scan = _scan(text, path)
    eol = _first_eol(text)
    lines = scan.lines
    # out[i] is what original line i becomes: itself, nothing, or itself plus
    # the lines inserted after it.
    out: list[list[tuple[str, str]]] = [[(line.body, line.ending)] for line in lines]
    for section, changes in updates.items():
        wanted = dict(changes)
        if section in scan.values:
            _apply_to_section(lines, out, section, wanted, eol)
            continue
        new = [(key, value) for key, value in wanted.items() if value is not None]
        if not new:
            continue
        block = [(f"[{section}]", eol), *((_key_line("", k, v), eol) for k, v in new)]
        # One blank line between sections, unless the file already ends with one.
        if any(out) and _last_body(out).strip():
            block.insert(0, ("", eol))
        out.append(block)

    flat = [pair for group in out for pair in group]
    return (BOM if scan.bom else "") + _join(flat, lines, eol)


def _last_body(out: list[list[tuple[str, str]]]) -> str:
    return next(group[-1][0] for group in reversed(out) if group)


def _apply_to_section(
    lines: tuple[_Line, ...],
    out: list[list[tuple[str, str]]],
    section: str,
    wanted: dict[str, str | None],
    eol: str,
) -> None:
    """Replace, remove and add keys of one existing section, in `out`."""
    header = next(
        i for i, ln in enumerate(lines) if ln.kind is _Kind.HEADER and ln.section == section
    )
    end = next(
        (i for i in range(header + 1, len(lines)) if lines[i].kind is _Kind.HEADER),
        len(lines),
    )
    last_key_line: int | None = None  # the last KEY or CONTINUATION line of the section
    last_key_indent = ""
    for i in range(header + 1, end):
        line = lines[i]
        if line.kind is _Kind.KEY or line.kind is _Kind.CONTINUATION:
            last_key_line = i
        if line.kind is _Kind.KEY:
            last_key_indent = line.indent
        if line.key is None or line.key not in wanted:
            continue
        value = wanted[line.key]
        if line.kind is _Kind.CONTINUATION or value is None:
            out[i] = []
        else:
            out[i] = [(_replaced(line, value), line.ending)]

    existing = {ln.key for ln in lines[header + 1 : end] if ln.kind is _Kind.KEY}
    new = [
        (key, value) for key, value in wanted.items() if value is not None and key not in existing
    ]
    if not new:
        return
    if last_key_line is not None:
        at, indent = last_key_line, last_key_indent
    else:
        # A section without keys: after its header. An indented header next
        # would read as a continuation of a less indented key, so match it.
        at = header
        indent = lines[end].indent if end < len(lines) else ""
    out[at].extend((_key_line(indent, key, value), eol) for key, value in new)


def _join(flat: list[tuple[str, str]], original: tuple[_Line, ...], eol: str) -> str:
    """Join lines, giving every line but the last an ending, and the last the original's."""
    if not flat:
        return ""
    ends_with_newline = not original or original[-1].ending != ""
    parts: list[str] = []
    for body, ending in flat[:-1]:
        parts.append(body)
        parts.append(ending or eol)
    body, ending = flat[-1]
    parts.append(body)
    if ends_with_newline:
        parts.append(ending or eol)
    return "".join(parts)


def _replaced(line: _Line, value: str) -> str:
    """The key line with a new value, keeping everything before the value."""
    if not value:
        # No trailing space behind the delimiter, so that setting it again is a no-op.
        return line.body[: line.delimiter_end]
    if line.value_empty:
        # Space after the delimiter as the key line has before it: `k = v`, `k=v`.
        return line.body[: line.delimiter_end] + (" " if line.spaced else "") + value
    return line.body[: line.value_start] + value


def _key_line(indent: str, key: str, value: str) -> str:
    return f"{indent}{key} = {value}" if value else f"{indent}{key} ="


def _first_eol(text: str) -> str:
    match = re.search(r"\r\n|\r|\n", text)
    return match.group(0) if match else "\n"


def _check_updates(updates: Mapping[str, Mapping[str, str | None]]) -> None:
    """Refuse updates that would not read back as written: programming errors."""
    for section, changes in updates.items():
        if not section or "\n" in section or "\r" in section:
            raise ValueError("a section name must be one non-empty line")
        if section == DEFAULT_SECTION:
            raise ValueError("credd never writes [DEFAULT]: every profile would inherit its keys")
        for key, value in changes.items():
            if (
                not key
                or key != key.strip()
                or key != key.lower()
                or any(c in key for c in "=:\r\n")
                or key.startswith(("#", ";", "["))
            ):
                raise ValueError(f"not a key credd can write: {key!r}")
            if value is not None and ("\n" in value or "\r" in value or value != value.strip()):
                # The value itself is never shown: it may be a secret.
                raise ValueError(f"the value for {key!r} has a line break or surrounding space")


def _split_lines(text: str) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    pos = 0
    for match in _LINE.finditer(text):
        lines.append((match.group(1), match.group(2)))
        pos = match.end()
    if pos < len(text):
        lines.append((text[pos:], ""))
    return lines


def _key_name(key: str) -> str:
    return f"key '{key}'" if _SHOWABLE_KEY.fullmatch(key) else "a key"


def _scan(text: str, path: str) -> _Scan:
    """Classify every line as configparser's `_read` does, and collect the values.

    The control flow follows `configparser.RawConfigParser._read` step by
    step (comment, blank, continuation, header, key), because any shortcut
    would disagree with botocore on some file.
    """
    bom = text.startswith(BOM)
    body_text = text[1:] if bom else text
    values: dict[str, dict[str, list[str]]] = {}
    header_lines: dict[str, int] = {}
    key_lines: dict[tuple[str, str], int] = {}
    lines: list[_Line] = []
    section: str | None = None
    key: str | None = None  # the key that indented lines continue
    indent_level = 0

    for number, (body, ending) in enumerate(_split_lines(body_text), start=1):
        stripped = body.strip()
        if stripped.startswith(_COMMENT_PREFIXES):
            lines.append(_Line(number, body, ending, _Kind.COMMENT, section))
            continue
        if not stripped:
            if section is not None and key:
                values[section][key].append("")
            lines.append(_Line(number, body, ending, _Kind.BLANK, section))
            continue
        nonspace = _NONSPACE.search(body)
        indent = nonspace.start() if nonspace else 0
        if section is not None and key and indent > indent_level:
            values[section][key].append(stripped)
            lines.append(_Line(number, body, ending, _Kind.CONTINUATION, section, key))
            continue
        indent_level = indent
        header = _SECTION.match(stripped)
        if header:
            name = header.group("header")
            if name in header_lines and name != DEFAULT_SECTION:
                raise CredentialsFileError(
                    path,
                    number,
                    f"section [{name}] appears twice (first on line {header_lines[name]})",
                )
            header_lines.setdefault(name, number)
            values.setdefault(name, {})
            section, key = name, None
            lines.append(_Line(number, body, ending, _Kind.HEADER, section))
            continue
        if section is None:
            raise CredentialsFileError(
                path, number, "a key or other text comes before the first [section] header"
            )
        option = _OPTION.match(stripped)
        if option is None:
            reason = (
                "broken section header (a line starting with '[' needs a closing ']')"
                if stripped.startswith("[")
                else "not a comment, a [section] header or a 'key = value' line"
            )
            raise CredentialsFileError(path, number, reason)
        key = option.group("option").rstrip().lower()
        if not key:
            raise CredentialsFileError(path, number, "a key name is missing before the '=' or ':'")
        if (section, key) in key_lines:
            raise CredentialsFileError(
                path,
                number,
                f"{_key_name(key)} appears twice in section [{section}]"
                f" (first on line {key_lines[section, key]})",
            )
        key_lines[section, key] = number
        value = option.group("value")
        values[section][key] = [value.strip()]
        lead = len(body) - len(body.lstrip())
        lines.append(
            _Line(
                number,
                body,
                ending,
                _Kind.KEY,
                section,
                key,
                delimiter_end=lead + option.end("vi"),
                value_start=lead + option.start("value"),
                value_empty=not value,
                spaced=option.start("vi") > option.end("option"),
            )
        )

    joined: dict[str, dict[str, str]] = {}
    for name, keys in values.items():
        joined[name] = {}
        for key_name, parts in keys.items():
            value = "\n".join(parts).rstrip()
            # botocore reads an empty first line plus indented lines as a
            # nested block of `name = value` lines, and refuses any other.
            if value.startswith("\n") and any(
                part.strip() and "=" not in part for part in value.splitlines()
            ):
                raise CredentialsFileError(
                    path,
                    key_lines[name, key_name],
                    f"the indented lines under {_key_name(key_name)} must each be"
                    " 'name = value' (botocore reads them as a nested setting)",
                )
            joined[name][key_name] = value
    return _Scan(bom, tuple(lines), joined)
