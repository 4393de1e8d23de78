"""credd.cmdline and credd.cmdparser: one table, two parsers that agree, help from the table."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credd import cmdparser
from credd.cmdline import (
    ANY,
    DEBUG,
    JSON,
    OPTIONAL,
    PROFILE,
    SOCKET,
    Command,
    Option,
    Positional,
    Program,
    fast_parse,
)
from credd.ctl.grammar import CREDCTL
from credd.grammar import CREDD

# A program with every shape a table may take: a group (`keys list`), a required option,
# an int, choices, an optional and a repeated positional, a command followed by `-- ...`.
SAMPLE = Program(
    "sample",
    "A program of every shape, for the tests. Paths: {socket}.",
    version="9.9",
    common=[SOCKET, JSON, DEBUG],
    exits=[(0, "fine")],
    facts=lambda env: {"socket": env.get("SAMPLE_SOCKET", "/run/sample.sock")},
    commands=[
        Command(
            "keys",
            "long-term keys",
            "Long-term keys.",
            exits=(),
            commands=[
                Command(
                    "list",
                    "list them",
                    "Lists them.",
                    common=(JSON.flag, DEBUG.flag),
                    exits=[(0, "listed")],
                ),
                Command(
                    "import",
                    "import one",
                    "Imports one.",
                    positionals=[Positional("profile", "PROFILE", "whose", complete=PROFILE)],
                    options=[Option("--file", "from", metavar="F")],
                    common=(SOCKET.flag,),
                    exits=[(0, "imported"), (2, "bad")],
                ),
            ],
        ),
        Command(
            "send",
            "send",
            "Sends.",
            positionals=[
                Positional("kind", "KIND", "which", choices=("a", "b")),
                Positional("names", "NAME", "names", nargs=ANY),
            ],
            options=[
                Option("--count", "how many", metavar="N", type=int),
                Option("--to", "where", metavar="WHERE", required=True),
                Option("--level", "how loud", metavar="L", choices=("low", "high"), default="low"),
                Option("--quiet", "say less"),
            ],
            common=(SOCKET.flag, DEBUG.flag),
            exits=[(0, "sent")],
        ),
        Command(
            "peek",
            "peek",
            "Peeks.",
            positionals=[Positional("name", "NAME", "which", nargs=OPTIONAL)],
            common=(SOCKET.flag, JSON.flag),
            exits=[(0, "seen")],
        ),
        Command(
            "run",
            "run",
            "Runs.",
            usage="sample run NAME [--env] -- COMMAND [ARG...]",
            positionals=[
                Positional("name", "NAME", "which"),
                Positional("argv", "COMMAND", "what", nargs=ANY),
            ],
            options=[Option("--env", "static")],
            rest="argv",
            exits=[(0, "ran")],
        ),
    ],
)


def parse_quietly(program: Program, words: list[str]) -> dict[str, Any] | int:
    """argparse's dict, or the status it exits with (help, version, a mistake)."""
    try:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            return cmdparser.parse(program, words)
    except SystemExit as stop:
        return int(stop.code or 0)


def vocabulary(program: Program) -> list[str]:
    """Every word the program knows, and some it does not."""
    words = {"--", "-", "-x", "-5", "", "a b", "--help", "--version", "x", "1h", "7", "a"}
    for option in program.common:
        words |= {option.flag, f"{option.flag}=v", option.flag[:4]}
    for command in program.walk():
        words.add(command.name)
        for option in command.options:
            words |= {option.flag, *option.choices}
        for positional in command.positionals:
            words |= set(positional.choices)
    return sorted(words)


def command_lines(program: Program) -> st.SearchStrategy[list[str]]:
    """Lines near the program's own: common options, a command's path, then a shuffle of its
    options, their values, positional-looking words and a few mistakes."""
    leaves = [c for c in program.walk() if not c.commands]
    noise = st.sampled_from(vocabulary(program))

    @st.composite
    def line(draw: st.DrawFn) -> list[str]:
        command = draw(st.sampled_from(leaves))
        path = next(
            p
            for p in _paths(program)
            if p.split(" ")[-1] == command.name and _at(program, p) is command
        )
        before: list[str] = []
        for option in draw(st.lists(st.sampled_from(program.common), max_size=2)):
            before += [option.flag, "v"] if option.takes_value else [option.flag]
        pieces: list[list[str]] = []
        for option in [*command.options, *program.common_options(command)]:
            if draw(st.booleans()):
                value = draw(st.sampled_from([*option.choices, "7", "v", "-v"]))
                pieces.append([option.flag, value] if option.takes_value else [option.flag])
        for positional in command.positionals:
            for _ in range(draw(st.integers(0, 2))):
                pieces.append([draw(st.sampled_from([*positional.choices, "p", "q"]))])
        pieces += [[draw(noise)] for _ in range(draw(st.integers(0, 1)))]
        tail = [word for piece in draw(st.permutations(pieces)) for word in piece]
        return [*before, *path.split(" "), *tail]

    return line()


def _paths(program: Program) -> list[str]:
    found = []
    pending = [(c.name, c) for c in program.commands]
    while pending:
        path, command = pending.pop()
        found.append(path)
        pending += [(f"{path} {c.name}", c) for c in command.commands]
    return found


def _at(program: Program, path: str) -> Command | None:
    names = path.split(" ")
    command = program.find(names[0])
    for name in names[1:]:
        command = command.find(name) if command else None
    return command


@pytest.mark.parametrize("program", [CREDCTL, CREDD, SAMPLE], ids=lambda p: p.name)
@given(data=st.data())
def test_the_fast_parser_agrees_with_argparse(program: Program, data: st.DataObject) -> None:
    """Whatever `fast_parse` accepts, argparse built from the same table parses the same;
    on lines of words drawn from the table, and on lines of any of its words."""
    lines = st.one_of(
        command_lines(program), st.lists(st.sampled_from(vocabulary(program)), max_size=7)
    )
    words = data.draw(lines)
    plain = fast_parse(program, words)
    if plain is not None:
        assert parse_quietly(program, words) == plain


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (
            ["keys", "list", "--json"],
            {"command": "keys list", "socket": None, "json": True, "debug": False},
        ),
        (
            ["--json", "keys", "list"],
            {"command": "keys list", "socket": None, "json": True, "debug": False},
        ),
        (
            ["--socket", "/a", "keys", "import", "p", "--socket", "/b"],
            {
                "command": "keys import",
                "socket": "/b",
                "json": False,
                "debug": False,
                "profile": "p",
                "file": None,
            },
        ),
        (
            ["send", "a", "x", "y", "--to", "t", "--count", "3", "--level", "high"],
            {
                "command": "send",
                "socket": None,
                "json": False,
                "debug": False,
                "kind": "a",
                "names": ["x", "y"],
                "count": 3,
                "to": "t",
                "level": "high",
                "quiet": False,
            },
        ),
        (
            ["run", "n", "--env", "--", "ls", "--env", "--"],
            {
                "command": "run",
                "socket": None,
                "json": False,
                "debug": False,
                "name": "n",
                "env": True,
                "argv": ["ls", "--env", "--"],
            },
        ),
        (
            ["peek"],
            {"command": "peek", "socket": None, "json": False, "debug": False, "name": None},
        ),
    ],
)
def test_both_parsers_read_every_shape(words: list[str], expected: dict[str, Any]) -> None:
    """Groups, common options before and after (the later wins), types, choices, defaults,
    optional and repeated positionals, and the words after `--`."""
    assert fast_parse(SAMPLE, words) == expected
    assert cmdparser.parse(SAMPLE, words) == expected


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--json", "send", "a", "--to", "t"], "--json does not apply to `sample send`"),
        (["send", "a"], "the following arguments are required: --to"),
        (["send", "c", "--to", "t"], "invalid choice: 'c'"),
        (["send", "a", "--to", "t", "--count", "many"], "invalid int value: 'many'"),
        (["keys"], "the following arguments are required: COMMAND"),
    ],
)
def test_mistakes_exit_2_with_argparse_words(
    words: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fast path leaves mistakes to argparse, which names them and exits 2."""
    assert fast_parse(SAMPLE, words) is None
    with pytest.raises(SystemExit) as stop:
        cmdparser.parse(SAMPLE, words)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def test_help_shows_the_description_the_real_paths_and_the_exit_statuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A command's --help: its description, `{facts}` filled in for the environment given,
    the common options' note, and one line per exit status."""
    with pytest.raises(SystemExit) as stop:
        cmdparser.parse(SAMPLE, ["keys", "import", "--help"], env={"SAMPLE_SOCKET": "/x/s.sock"})
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sample keys import [-h] [--file F] [--socket PATH] PROFILE")
    assert "Imports one." in out
    assert "here /x/s.sock" in out
    assert "--socket may also come before the command name." in out
    assert "exit status:\n  0   imported\n  2   bad" in out
    with pytest.raises(SystemExit):
        cmdparser.parse(SAMPLE, ["--help"], env={})
    assert "Paths: /run/sample.sock." in capsys.readouterr().out


@pytest.mark.parametrize(
    "make",
    [
        lambda: Option("-x", "short options are argparse's"),
        lambda: Option("--x", "?", complete="nonsense"),
        lambda: Positional("p", "P", "?", nargs="+"),
        lambda: Command("c", "c", "c", exits=()),
        lambda: Command(
            "c",
            "c",
            "c",
            exits=[(0, "")],
            positionals=[Positional("a", "A", "", nargs=OPTIONAL), Positional("b", "B", "")],
        ),
        lambda: Command("c", "c", "c", exits=[(0, "")], rest="argv"),
        lambda: Program(
            "p",
            "",
            version="1",
            common=[JSON],
            exits=(),
            facts=dict,
            commands=[Command("c", "c", "c", exits=[(0, "")], common=("--socket",))],
        ),
    ],
)
def test_a_table_that_cannot_be_parsed_alike_is_refused(make: Any) -> None:
    """The shapes both parsers could not read the same way are refused when the table is made."""
    with pytest.raises(ValueError):
        make()


@pytest.mark.parametrize("program", [CREDCTL, CREDD], ids=lambda p: p.name)
def test_positional_names_agree(program: Program) -> None:
    """Every profile credd keeps is called PROFILE wherever a command takes one, and each
    command has a description and its exit statuses."""
    for command in program.walk():
        for item in [*command.options, *command.positionals]:
            if item.complete == PROFILE:
                assert item.metavar == "PROFILE", (command.name, item.dest)
        assert command.description and (command.exits or command.commands)
