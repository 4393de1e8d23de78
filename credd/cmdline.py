"""A program's command line as one table: its commands, options and positionals, written once.

Standard library only, and none of the modules `credctl` must not load on its common
paths (argparse, re, dataclasses, typing...): `credctl` reads its table
(credd/ctl/grammar.py) on every run, as `credd` reads its own (credd/grammar.py).
From a table come:

- `fast_parse`, here: the everyday command lines, parsed with no import at all;
- `credd.cmdparser.parse`: argparse, for everything else (help, mistakes, `--opt=value`,
  abbreviations), whose `--help` shows each command's description, the real default
  paths and the exit statuses;
- `credd.completion.script`: the bash, zsh and fish completion scripts.

Both parsers give the same dict for every command line `fast_parse` accepts
(tests/test_cmdline.py checks it on generated lines). The dict holds `command` (a
subcommand's path joined by spaces: `keys list`), every common option of the program,
and every option and positional of the command, by `dest`.

Options common to several commands (`--socket`, `--json`...) are written once, at the
program, and each command names those it takes: they are accepted before or after the
command name (SPEC.md "Commands"), and refused before a command that does not take them.
Adding a command is one `Command(...)` entry in its program's table.
"""

from __future__ import annotations

# `typing` is for the type checker only: importing it costs credctl ~4 ms of a ~25 ms start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

# What a shell completes for a value (Option.complete, Positional.complete).
PROFILE = "profile"  # a profile credd manages: the daemon's, else the policy's
FILE = "file"
DIRECTORY = "directory"
COMMAND = "command"  # a program on PATH (after `credctl exec PROFILE --`)
COMPLETE_KINDS = (PROFILE, FILE, DIRECTORY, COMMAND)

# How many words a positional takes.
ONE = "1"
OPTIONAL = "?"
ANY = "*"


class Option:
    """`--name VALUE` (with a `metavar`), or a flag (no `metavar`), True when given.

    `help` may name facts in braces (`{socket}`), filled in with the real paths when help
    is shown (`Program.facts`). `default` is the value when the option is not given: None
    for a value, False for a flag. `type` converts the value (`int`); `complete` says what
    a shell offers for it (one of COMPLETE_KINDS) when `choices` do not. A `required`
    option must be given (`credctl import --csv FILE`).
    """

    __slots__ = (
        "choices",
        "complete",
        "default",
        "dest",
        "flag",
        "help",
        "metavar",
        "required",
        "type",
    )

    def __init__(
        self,
        flag: str,
        help: str,
        *,
        metavar: str | None = None,
        dest: str | None = None,
        choices: tuple[str, ...] = (),
        default: Any = None,
        type: Callable[[str], Any] | None = None,
        complete: str | None = None,
        required: bool = False,
    ) -> None:
        if not flag.startswith("--") or len(flag) < 3:
            raise ValueError(f"an option is --name, not {flag!r}")
        if complete is not None and complete not in COMPLETE_KINDS:
            raise ValueError(f"{flag}: cannot complete {complete!r}")
        self.flag = flag
        self.help = help
        self.metavar = metavar
        self.dest = dest or flag[2:].replace("-", "_")
        self.choices = choices
        self.default = default if metavar is not None else False
        self.type = type
        self.complete = complete
        self.required = required

    @property
    def takes_value(self) -> bool:
        """True for `--name VALUE`, False for a flag."""
        return self.metavar is not None


class Positional:
    """A positional argument: exactly one word (ONE), at most one (OPTIONAL), or any (ANY)."""

    __slots__ = ("choices", "complete", "dest", "help", "metavar", "nargs")

    def __init__(
        self,
        dest: str,
        metavar: str,
        help: str,
        *,
        nargs: str = ONE,
        choices: tuple[str, ...] = (),
        complete: str | None = None,
    ) -> None:
        if nargs not in (ONE, OPTIONAL, ANY):
            raise ValueError(f"{metavar}: nargs is one of 1, ?, *; not {nargs!r}")
        if complete is not None and complete not in COMPLETE_KINDS:
            raise ValueError(f"{metavar}: cannot complete {complete!r}")
        self.dest = dest
        self.metavar = metavar
        self.help = help
        self.nargs = nargs
        self.choices = choices
        self.complete = complete


class Command:
    """One command: `summary` for the program's list, `description` and `exits` for its help.

    `common` names (by flag) the program's common options it takes. `commands` makes it a
    group (`credd keys list`): it then has subcommands and no options or positionals of
    its own. `rest` names its last positional (ANY) that also takes every word after a
    `--` (`credctl exec PROFILE -- COMMAND...`); `usage` replaces the generated usage line.
    """

    __slots__ = (
        "commands",
        "common",
        "description",
        "exits",
        "name",
        "options",
        "positionals",
        "rest",
        "summary",
        "usage",
    )

    def __init__(
        self,
        name: str,
        summary: str,
        description: str,
        *,
        exits: Sequence[tuple[int, str]],
        options: Sequence[Option] = (),
        positionals: Sequence[Positional] = (),
        common: Sequence[str] = (),
        commands: Sequence[Command] = (),
        rest: str | None = None,
        usage: str | None = None,
    ) -> None:
        self.name = name
        self.summary = summary
        self.description = description
        self.exits = tuple(exits)
        self.options = tuple(options)
        self.positionals = tuple(positionals)
        self.common = tuple(common)
        self.commands = tuple(commands)
        self.rest = rest
        self.usage = usage
        self._check()

    def _check(self) -> None:
        if not self.exits and not self.commands:
            raise ValueError(f"{self.name}: list its exit statuses")
        if self.commands and (self.options or self.positionals or self.common or self.rest):
            raise ValueError(f"{self.name}: a group takes only its subcommands")
        for positional in self.positionals[:-1]:
            if positional.nargs != ONE:
                raise ValueError(f"{self.name}: only the last positional may be optional")
        if self.rest is not None and (
            not self.positionals
            or self.positionals[-1].dest != self.rest
            or self.positionals[-1].nargs != ANY
        ):
            raise ValueError(f"{self.name}: `rest` names its last positional, taking any")
        flags = [option.flag for option in self.options]
        if len(set(flags)) != len(flags):
            raise ValueError(f"{self.name}: an option given twice")

    def find(self, name: str) -> Command | None:
        """The subcommand called `name`, if any."""
        for command in self.commands:
            if command.name == name:
                return command
        return None


class Program:
    """A program's whole table: its common options and its commands.

    `facts(env)` gives the values help shows in place of `{name}` (the real socket and
    policy paths); it is called only when help is printed.
    """

    __slots__ = ("commands", "common", "description", "exits", "facts", "name", "version")

    def __init__(
        self,
        name: str,
        description: str,
        *,
        version: str,
        common: Sequence[Option],
        commands: Sequence[Command],
        exits: Sequence[tuple[int, str]],
        facts: Callable[[Mapping[str, str]], dict[str, str]],
    ) -> None:
        self.name = name
        self.description = description
        self.version = version
        self.common = tuple(common)
        self.commands = tuple(commands)
        self.exits = tuple(exits)
        self.facts = facts
        known = {option.flag for option in self.common}
        for command in self.walk():
            unknown = set(command.common) - known
            if unknown:
                raise ValueError(f"{command.name}: no common option {sorted(unknown)}")
            clash = known & {option.flag for option in command.options}
            if clash:
                raise ValueError(f"{command.name}: {sorted(clash)} is a common option")

    def find(self, name: str) -> Command | None:
        """The top-level command called `name`, if any."""
        for command in self.commands:
            if command.name == name:
                return command
        return None

    def walk(self) -> list[Command]:
        """Every command, groups and their subcommands included, depth first."""
        found: list[Command] = []
        pending = list(reversed(self.commands))
        while pending:
            command = pending.pop()
            found.append(command)
            pending.extend(reversed(command.commands))
        return found

    def common_options(self, command: Command) -> list[Option]:
        """The common options `command` takes, as Option values."""
        return [option for option in self.common if option.flag in command.common]

    def defaults(self) -> dict[str, Any]:
        """Every common option at its default: what a parse starts from."""
        return {option.dest: option.default for option in self.common}


def fast_parse(program: Program, words: Sequence[str]) -> dict[str, Any] | None:
    """The everyday command lines as `credd.cmdparser.parse` would parse them; None for the rest.

    Recognised: common options before the command, the command (and subcommand), then
    its options and common options, each spelt in full as its own word (a value as the
    next word, not starting with `-`), and its positionals in one run; for a command with
    a `rest`, the words up to its `--`, and the rest after it. Everything else (help,
    `--version`, `--option=value`, abbreviations, a lone `-`, a `--` elsewhere, a value
    argparse would refuse or convert, wrong counts) is left to argparse, which also
    words the mistakes.
    """
    args = program.defaults()
    common = {option.flag: option for option in program.common}
    given_before: list[str] = []
    index = 0
    while index < len(words) and words[index].startswith("-"):
        option = common.get(words[index])
        if option is None:
            return None
        index = _take(option, words, index, args)
        if index < 0:
            return None
        given_before.append(option.flag)
    if index >= len(words):
        return None
    command = program.find(words[index])
    path = [words[index]]
    index += 1
    while command is not None and command.commands:
        if index >= len(words):
            return None
        command = command.find(words[index])
        path.append(words[index])
        index += 1
    if command is None or any(flag not in command.common for flag in given_before):
        return None
    args["command"] = " ".join(path)
    options = {option.flag: option for option in command.options}
    options.update((option.flag, option) for option in program.common_options(command))
    args.update((option.dest, option.default) for option in command.options)
    rest = list(words[index:])
    after: list[str] | None = None
    if command.rest is not None:
        if "--" not in rest:
            return None
        cut = rest.index("--")
        rest, after = rest[:cut], rest[cut + 1 :]
    found: list[str] = []
    run_ended = False
    index = 0
    while index < len(rest):
        word = rest[index]
        if word.startswith("-"):
            option = options.get(word)
            if option is None:
                return None
            index = _take(option, rest, index, args)
            if index < 0:
                return None
            run_ended = bool(found)
        elif run_ended:
            return None
        else:
            found.append(word)
            index += 1
    if not _assign(command.positionals, found, args):
        return None
    if any(option.required and args[option.dest] is None for option in command.options):
        return None
    if command.rest is not None and after is not None:
        args[command.rest] = [*args[command.rest], *after]
    return args


def _take(option: Option, words: Sequence[str], index: int, args: dict[str, Any]) -> int:
    """Store `words[index]` (an option) and its value in `args`; the next index, or -1."""
    if not option.takes_value:
        args[option.dest] = True
        return index + 1
    if index + 1 >= len(words) or words[index + 1].startswith("-"):
        return -1
    value: Any = words[index + 1]
    if option.choices and value not in option.choices:
        return -1
    if option.type is not None:
        try:
            value = option.type(value)
        except ValueError:
            return -1
    args[option.dest] = value
    return index + 2


def _assign(positionals: Sequence[Positional], found: list[str], args: dict[str, Any]) -> bool:
    """Give each positional its words, as argparse would; False where counts or choices fail."""
    required = sum(1 for positional in positionals if positional.nargs == ONE)
    tail = positionals[-1].nargs if positionals else ONE
    if len(found) < required:
        return False
    if (tail == ONE and len(found) > required) or (tail == OPTIONAL and len(found) > required + 1):
        return False
    for position, positional in enumerate(positionals):
        if positional.nargs == ANY:
            value: Any = found[position:]
            words = value
        elif position < len(found):
            value = found[position]
            words = [value]
        else:
            value, words = None, []
        if positional.choices and any(word not in positional.choices for word in words):
            return False
        args[positional.dest] = value
    return True


# The options common to several commands of `credd` and `credctl` (SPEC.md "Commands"), one
# definition each; `{socket}` and `{policy}` are the paths in force where help is shown.
SOCKET = Option(
    "--socket",
    "the control socket; here {socket} ($CREDD_SOCKET, else under $XDG_RUNTIME_DIR or $TMPDIR)",
    metavar="PATH",
    complete=FILE,
)
POLICY = Option(
    "--policy",
    "the policy file; here {policy} ($CREDD_POLICY, else $XDG_CONFIG_HOME/credd/policy.yaml)",
    metavar="PATH",
    complete=FILE,
)
LOG_LEVEL = Option(
    "--log-level",
    "how much the daemon logs to stderr",
    metavar="LEVEL",
    choices=("debug", "info", "warning", "error"),
    default="info",
)
JSON = Option("--json", "one JSON object, for scripts")
DEBUG = Option("--debug", "a traceback instead of a one-line error")

# The exit status every program's table lists for a malformed command line.
BAD_INPUT = (2, "bad input")
SHELLS = ("bash", "zsh", "fish")


def completion_command(program: str) -> Command:
    """`PROGRAM completion bash|zsh|fish`: the same entry in credd's table and credctl's."""
    return Command(
        "completion",
        "print the shell completion script for bash, zsh or fish",
        f"Prints {program}'s completion script for SHELL: its commands, options, and "
        "profile names (those of the running credd, else the policy's). Installed with one "
        "line per shell (as in the README's setup), for instance:\n\n"
        f"  bash: {program} completion bash > "
        f"~/.local/share/bash-completion/completions/{program}\n"
        f"  zsh:  {program} completion zsh > ~/.zfunc/_{program}\n"
        "        (with fpath=(~/.zfunc $fpath) before compinit in ~/.zshrc)\n"
        f"  fish: {program} completion fish > ~/.config/fish/completions/{program}.fish",
        positionals=[Positional("shell", "SHELL", "bash, zsh or fish", choices=SHELLS)],
        exits=[(0, "printed"), BAD_INPUT],
    )
