"""A program's table (credd.cmdline) as argparse: help, mistakes, and every form it accepts.

Loaded only for what `credd.cmdline.fast_parse` does not recognise (help, `--version`,
mistakes, `--option=value`, abbreviations): `argparse` costs `credctl` ~14 ms of a
~25 ms start (bench/RESULTS.md #2).

Each command's `--help` shows its description, its options with the real defaults
(the actual socket and policy paths, from `Program.facts`) and its exit statuses.

A common option is added twice: to the program (before the command) and to each
command that takes it (after), each with its own destination, then merged; the value
after the command wins. argparse would otherwise let a subcommand's default overwrite
a value given before it.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from credd.cmdline import ANY, OPTIONAL, Command, Option, Program

_BEFORE = "before_command:"  # the destination prefix of a common option given before it
_GIVEN = "given_command:"  # the destination of each group's chosen subcommand


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's layout, sized to the terminal without `shutil`; descriptions come wrapped."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=terminal_columns() - 2)


class _ArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands' parsers) using `_Formatter`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(**kwargs)


def terminal_columns() -> int:
    """$COLUMNS, else the terminal's width, else 80: what `shutil.get_terminal_size` says."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Facts(dict[str, str]):
    """The facts help fills in; a name with no fact stays as written."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Built:
    """The argparse parser of a program, and each command's own, by path (`keys list`)."""

    def __init__(self, program: Program, env: Mapping[str, str]) -> None:
        self.program = program
        self.facts = _Facts(program.facts(env))
        self.width = terminal_columns() - 2
        self.parsers: dict[str, argparse.ArgumentParser] = {}
        self.top = _ArgumentParser(
            prog=program.name,
            description=self._wrap(program.description),
            epilog=self._epilog(program.exits, _top_note(program)),
        )
        self.top.add_argument(
            "--version", action="version", version=f"{program.name} {program.version}"
        )
        for option in program.common:
            self._add_option(self.top, option, dest=_BEFORE + option.dest, suppress=True)
        self._add_commands(self.top, program.commands, prefix="")

    def _add_commands(
        self, parser: argparse.ArgumentParser, commands: Sequence[Command], prefix: str
    ) -> None:
        sub = parser.add_subparsers(
            dest=_GIVEN + prefix,
            required=True,
            metavar="COMMAND",
            parser_class=_ArgumentParser,
        )
        for command in commands:
            path = f"{prefix} {command.name}".strip()
            extra: dict[str, Any] = {"help": command.summary}
            if command.usage is not None:
                extra["usage"] = command.usage
            child = sub.add_parser(
                command.name,
                description=self._wrap(command.description),
                epilog=self._epilog(command.exits, _command_note(command)),
                **extra,
            )
            self.parsers[path] = child
            for option in command.options:
                self._add_option(child, option, dest=option.dest, suppress=False)
            for option in self.program.common_options(command):
                self._add_option(child, option, dest=option.dest, suppress=True)
            for positional in command.positionals:
                nargs = {OPTIONAL: "?", ANY: "*"}.get(positional.nargs)
                child.add_argument(
                    positional.dest,
                    metavar=positional.metavar,
                    nargs=nargs,
                    choices=positional.choices or None,
                    help=self._help(positional.help),
                )
            if command.commands:
                self._add_commands(child, command.commands, path)

    def _add_option(
        self, parser: argparse.ArgumentParser, option: Option, *, dest: str, suppress: bool
    ) -> None:
        default: Any = argparse.SUPPRESS if suppress else option.default
        text = self._help(option.help)
        if not option.takes_value:
            parser.add_argument(
                option.flag, dest=dest, action="store_true", default=default, help=text
            )
            return
        if option.default is not None:
            text += f" (default: {option.default})"
        extra: dict[str, Any] = {} if option.type is None else {"type": option.type}
        parser.add_argument(
            option.flag,
            dest=dest,
            metavar=option.metavar,
            default=default,
            choices=option.choices or None,
            required=option.required,
            help=text,
            **extra,
        )

    def _help(self, text: str) -> str:
        # argparse expands `%` in an argument's help: a path holding one must stay literal.
        return text.format_map(_Facts({k: v.replace("%", "%%") for k, v in self.facts.items()}))

    def _wrap(self, text: str) -> str:
        """Paragraphs filled to the terminal; one whose lines are indented is kept as it is."""
        paragraphs = text.format_map(self.facts).split("\n\n")
        return "\n\n".join(p if p.startswith("  ") else self._fill(p) for p in paragraphs)

    def _fill(self, text: str, *, initial_indent: str = "", subsequent_indent: str = "") -> str:
        return textwrap.fill(
            " ".join(text.split()),
            self.width,
            initial_indent=initial_indent,
            subsequent_indent=subsequent_indent,
            break_on_hyphens=False,
            break_long_words=False,
        )

    def _epilog(self, exits: Sequence[tuple[int, str]], note: str) -> str | None:
        lines = [self._fill(note), ""] if note else []
        if exits:
            lines.append("exit status:")
            for code, meaning in exits:
                lines.append(
                    self._fill(
                        meaning.format_map(self.facts),
                        initial_indent=f"  {code:<4}",
                        subsequent_indent=" " * 6,
                    )
                )
        return "\n".join(lines).strip() or None

    def command_parser(self, path: str) -> argparse.ArgumentParser:
        """The parser of the command at `path` (`status`, `keys list`)."""
        return self.parsers[path]


def _top_note(program: Program) -> str:
    flags = ", ".join(option.flag for option in program.common)
    return (
        f"{flags} may also come after the command, for the commands that take them."
        if flags
        else ""
    )


def _command_note(command: Command) -> str:
    if not command.common:
        return ""
    flags = " and ".join(", ".join(command.common).rsplit(", ", 1))
    return f"{flags} may also come before the command name."


def build(program: Program, env: Mapping[str, str] = os.environ) -> Built:
    """The argparse parsers of `program`, with help for `env` (its paths as defaults)."""
    return Built(program, env)


def parse(
    program: Program, words: Sequence[str], env: Mapping[str, str] = os.environ
) -> dict[str, Any]:
    """The command line as a dict of its values (credd.cmdline); exits 2 with usage on a
    mistake, 0 after --help or --version."""
    head, after = _split_rest(program, list(words))
    built = build(program, env)
    values = vars(built.top.parse_args(head))
    path = " ".join(values.pop(key) for key in sorted(k for k in values if k.startswith(_GIVEN)))
    command = _command_at(program, path)
    args: dict[str, Any] = {"command": path}
    for option in program.common:
        before = values.pop(_BEFORE + option.dest, argparse.SUPPRESS)
        value = values.pop(option.dest, argparse.SUPPRESS)
        if before is not argparse.SUPPRESS and option.flag not in command.common:
            built.command_parser(path).error(
                f"{option.flag} does not apply to `{program.name} {path}`"
            )
        if value is argparse.SUPPRESS:
            value = before if before is not argparse.SUPPRESS else option.default
        args[option.dest] = value
    args.update(values)
    if after is not None and command.rest is not None:
        args[command.rest] = [*args[command.rest], *after]
    return args


def _command_at(program: Program, path: str) -> Command:
    names = path.split(" ")
    command = program.find(names[0])
    for name in names[1:]:
        command = command.find(name) if command is not None else None
    if command is None:  # argparse admits only the table's commands
        raise LookupError(path)
    return command


def _split_rest(program: Program, words: list[str]) -> tuple[list[str], list[str] | None]:
    """For a command with a `rest` (`exec`), the words before its `--` and those after it.

    argparse would read the command's own options as the program's, and Python 3.11's cannot
    give a `*` positional the words after `--` once an option comes between them. Anything
    else is (words, None).
    """
    valued = [option.flag for option in program.common if option.takes_value]
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return words, None
        if word == "-" or not word.startswith("-"):
            break
        # A common option taking a value, or an abbreviation of one, takes the next word.
        takes_value = "=" not in word and len(word) > 2 and any(f.startswith(word) for f in valued)
        index += 2 if takes_value else 1
    else:
        return words, None
    command = program.find(words[index])
    index += 1
    while command is not None and command.commands and index < len(words):
        command = command.find(words[index])
        index += 1
    if command is None or command.rest is None or "--" not in words[index:]:
        return words, None
    cut = words.index("--", index)
    return words[:cut], words[cut + 1 :]
