"""Shell completion scripts for bash, zsh and fish, generated from a program's table.

`credd completion SHELL` and `credctl completion SHELL` print them. Each script holds
the table's words as data (a `spec` function: per command path, its subcommands, its
options and what their values are, its positionals, whether `-- COMMAND...` follows)
and one small engine per shell that walks the words typed so far through that data.
Profile names come at TAB time from `_CREDD_COMPLETE=profiles credd`
(credd.commands.names): the running daemon's, else the policy's, with the
`--socket`/`--policy` typed on the line passed on as CREDD_SOCKET/CREDD_POLICY.

Standard library only: credctl imports this module (for `credctl completion`).
"""

from __future__ import annotations

from credd.cmdline import (
    ANY,
    SHELLS,
    Command,
    Option,
    Positional,
    Program,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:@/+-")


class _Node:
    """One level of the command line (the program, a group, a command) as the scripts see it.

    `opts` holds (flag, kind, description): kind "" for a flag; `pos` each positional's
    kind, the last repeated when `repeat`. A kind is one of credd.cmdline's COMPLETE_KINDS,
    `choice:a,b`, or `text` (a value with nothing to offer).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.subs: list[tuple[str, str]] = []
        self.opts: list[tuple[str, str, str]] = []
        self.pos: list[str] = []
        self.repeat = False
        self.rest = False


def _kind(item: Option | Positional) -> str:
    if isinstance(item, Option) and not item.takes_value:
        return ""
    if item.choices:
        return "choice:" + ",".join(item.choices)
    return item.complete or "text"


def _describe(text: str) -> str:
    """A help text cut to its first clause, with no `{fact}`: what fits beside a candidate."""
    for mark in ("{", ";", " ("):
        text = text.split(mark, maxsplit=1)[0]
    return " ".join(text.split()).rstrip(" ,:")


def _nodes(program: Program) -> list[_Node]:
    top = _Node("")
    top.subs = [(c.name, _describe(c.summary)) for c in program.commands]
    top.opts = [(o.flag, _kind(o), _describe(o.help)) for o in program.common]
    top.opts += [("--version", "", "show the version"), ("--help", "", "show help")]
    nodes = [top]
    pending: list[tuple[str, Command]] = [(c.name, c) for c in program.commands]
    while pending:
        path, command = pending.pop(0)
        node = _Node(path)
        node.subs = [(c.name, _describe(c.summary)) for c in command.commands]
        options = [*command.options, *program.common_options(command)]
        node.opts = [(o.flag, _kind(o), _describe(o.help)) for o in options]
        node.opts.append(("--help", "", "show help"))
        node.pos = [_kind(p) for p in command.positionals]
        node.repeat = bool(command.positionals) and command.positionals[-1].nargs == ANY
        node.rest = command.rest is not None
        nodes.append(node)
        pending += [(f"{path} {c.name}", c) for c in command.commands]
    for node in nodes:
        words = [node.path, *(s for s, _ in node.subs), *(f + k for f, k, _ in node.opts)]
        words += node.pos
        for word in words:
            if not set(word) <= _WORD_CHARS | {" "}:
                raise ValueError(f"{word!r} cannot go into a completion script as it is")
    return nodes


def _quote(text: str) -> str:
    """`text` in single quotes for bash and zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _function_name(program: Program) -> str:
    return "_" + program.name.replace("-", "_")


def script(program: Program, shell: str) -> str:
    """The completion script of `program` for `shell` (one of credd.cmdline.SHELLS)."""
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}; one of {', '.join(SHELLS)}")
    nodes = _nodes(program)
    if shell == "bash":
        return _bash(program, nodes)
    if shell == "zsh":
        return _zsh(program, nodes)
    return _fish(program, nodes)


def _spec_lines(nodes: Sequence[_Node], *, described: bool, indent: str) -> list[str]:
    """The `case` branches of the bash and zsh spec functions."""
    lines = []
    for node in nodes:
        if described:
            subs = " ".join(_quote(f"{n}:{d}") for n, d in node.subs)
            opts = " ".join(_quote(f"{f}={k}:{d}" if k else f"{f}:{d}") for f, k, d in node.opts)
            assign = [f"subs=({subs})", f"opts=({opts})", f"pos=({' '.join(node.pos)})"]
        else:
            subs = " ".join(n for n, _ in node.subs)
            opts = " ".join(f"{f}={k}" if k else f for f, k, _ in node.opts)
            assign = [
                f"subs={_quote(subs)}",
                f"opts={_quote(opts)}",
                f"pos={_quote(' '.join(node.pos))}",
            ]
        assign += [f"many={int(node.repeat)}", f"rest={int(node.rest)}"]
        lines.append(f"{indent}{_quote(node.path)}) {'; '.join(assign)} ;;")
    return lines


def _bash(program: Program, nodes: Sequence[_Node]) -> str:
    fn = _function_name(program)
    name = program.name
    spec = "\n".join(_spec_lines(nodes, described=False, indent="    "))
    return f"""\
# bash completion for {name}, generated by `{name} completion bash` ({name} {program.version}).
# Install: {name} completion bash > ~/.local/share/bash-completion/completions/{name}
# (bash-completion loads it on the first TAB after `{name}`), or source it from ~/.bashrc.

# Sets, for a command path ($1): subs (its subcommands), opts (its options, those taking
# a value as --name=KIND), pos (its positionals' KINDs; the last repeats if many=1),
# rest (1: COMMAND [ARG...] may follow --).
{fn}_spec() {{
    subs= opts= pos= many=0 rest=0
    case $1 in
{spec}
    esac
}}

# Sets want to the KIND of option $1's value; empty for a flag or --name=value.
{fn}_want() {{
    local o
    want=
    [[ $1 == *=* ]] && return
    for o in $opts; do
        if [[ $o == "$1"=* ]]; then want=${{o#*=}}; return; fi
    done
}}

{fn}_values() {{
    local IFS=$'\\n' kind=$1 credd=credd
    [[ ${{COMP_WORDS[0]}} == */* ]] && credd=${{COMP_WORDS[0]%/*}}/credd
    case $kind in
    profile)
        COMPREPLY=($(compgen -W "$(env ${{sock:+CREDD_SOCKET="$sock"}} \\
            ${{pol:+CREDD_POLICY="$pol"}} _CREDD_COMPLETE=profiles "$credd" 2>/dev/null)" \\
            -- "$cur")) ;;
    file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
    directory) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
    command) COMPREPLY=($(compgen -c -- "$cur")) ;;
    choice:*) kind=${{kind#choice:}}; COMPREPLY=($(compgen -W "${{kind//,/$'\\n'}}" -- "$cur")) ;;
    esac
}}

{fn}() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmdpath= npos=0 after=0 want= last= sock= pol=
    local subs opts pos many rest i w
    COMPREPLY=()
    [[ $cur == = ]] && cur=
    {fn}_spec ''
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${{COMP_WORDS[i]}}
        if [[ -n $want ]]; then
            [[ $w == = ]] && continue  # --name=value arrives as --name, =, value
            case $last in --socket) sock=$w ;; --policy) pol=$w ;; esac
            want=
        elif ((after)); then
            ((after++))
        elif [[ $w == -- ]] && ((rest)); then
            after=1
        elif [[ $w == -* ]]; then
            last=$w
            {fn}_want "$w"
        elif ((npos == 0)) && [[ " $subs " == *" $w "* ]]; then
            cmdpath=${{cmdpath:+$cmdpath }}$w
            {fn}_spec "$cmdpath"
        else
            ((npos++))
        fi
    done
    if [[ -n $want ]]; then
        {fn}_values "$want"
    elif ((after == 1)); then
        {fn}_values command
    elif ((after > 1)); then
        {fn}_values file
    elif [[ $cur == -* ]]; then
        local o flags=
        for o in $opts; do flags+=" ${{o%%=*}}"; done
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    elif [[ -n $subs ]] && ((npos == 0)); then
        COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    else
        local -a kinds=($pos)
        if ((npos < ${{#kinds[@]}})); then
            {fn}_values "${{kinds[npos]}}"
        elif ((many)) && ((${{#kinds[@]}})); then
            {fn}_values "${{kinds[-1]}}"
        fi
    fi
}}

complete -F {fn} {name}
"""


def _zsh(program: Program, nodes: Sequence[_Node]) -> str:
    fn = _function_name(program)
    name = program.name
    spec = "\n".join(_spec_lines(nodes, described=True, indent="    "))
    return f"""\
#compdef {name}
# zsh completion for {name}, generated by `{name} completion zsh` ({name} {program.version}).
# Install: {name} completion zsh > ~/.zfunc/_{name}, with fpath=(~/.zfunc $fpath) before
# compinit in ~/.zshrc; or `eval "$({name} completion zsh)"` after compinit.

# Sets, for a command path ($1): subs (its subcommands, NAME:DESCRIPTION), opts (its
# options, --name=KIND:DESCRIPTION for those taking a value), pos (its positionals'
# KINDs; the last repeats if many=1), rest (1: COMMAND [ARG...] may follow --).
{fn}_spec() {{
    subs=() opts=() pos=() many=0 rest=0
    case $1 in
{spec}
    esac
}}

# Sets want to the KIND of option $1's value; empty for a flag or --name=value.
{fn}_want() {{
    local o
    want=
    [[ $1 == *=* ]] && return
    for o in $opts; do
        o=${{o%%:*}}
        if [[ $o == "$1"=* ]]; then want=${{o#*=}}; return; fi
    done
}}

{fn}_values() {{
    local kind=$1 credd=credd
    local -a names
    [[ $words[1] == */* ]] && credd=${{words[1]%/*}}/credd
    case $kind in
    (profile)
        names=(${{(f)"$(env ${{sock:+CREDD_SOCKET=$sock}} ${{pol:+CREDD_POLICY=$pol}} \\
            _CREDD_COMPLETE=profiles $credd 2>/dev/null)"}})
        _describe -t profiles 'profile' names ;;
    (file) _files ;;
    (directory) _files -/ ;;
    (command) _command_names -e ;;
    (choice:*) names=(${{(s:,:)kind#choice:}}); _describe -t values 'value' names ;;
    esac
}}

{fn}() {{
    local cmdpath= npos=0 after=0 want= last= sock= pol= many rest i w o
    local -a subs opts pos flags
    {fn}_spec ''
    for ((i = 2; i < CURRENT; i++)); do
        w=$words[i]
        if [[ -n $want ]]; then
            case $last in (--socket) sock=$w ;; (--policy) pol=$w ;; esac
            want=
        elif ((after)); then
            ((after++))
        elif [[ $w == -- ]] && ((rest)); then
            after=1
        elif [[ $w == -* ]]; then
            last=$w
            {fn}_want $w
        elif ((npos == 0)) && ((${{subs[(I)${{(b)w}}:*]}})); then
            cmdpath=${{cmdpath:+$cmdpath }}$w
            {fn}_spec $cmdpath
        else
            ((npos++))
        fi
    done
    if [[ -n $want ]]; then
        {fn}_values $want
    elif ((after == 1)); then
        {fn}_values command
    elif ((after > 1)); then
        {fn}_values file
    elif [[ $PREFIX == --*=* ]]; then
        {fn}_want ${{PREFIX%%=*}}
        local kind=$want
        want=
        compset -P '*='
        [[ -n $kind ]] && {fn}_values $kind
    elif [[ $PREFIX == -* ]]; then
        for o in $opts; do flags+=("${{${{o%%:*}}%%=*}}:${{o#*:}}"); done
        _describe -t options 'option' flags
    elif ((${{#subs}})) && ((npos == 0)); then
        _describe -t commands 'command' subs
    elif ((npos < ${{#pos}})); then
        {fn}_values $pos[npos+1]
    elif ((many)) && ((${{#pos}})); then
        {fn}_values $pos[-1]
    fi
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    {fn} "$@"
else
    compdef {fn} {name}
fi
"""


def _fish(program: Program, nodes: Sequence[_Node]) -> str:
    fn = "_" + _function_name(program)
    name = program.name
    branches = []
    for node in nodes:
        subs = " ".join(_fish_quote(f"{n}\t{d}") for n, d in node.subs)
        opts = " ".join(_fish_quote(f"{f}={k}\t{d}" if k else f"{f}\t{d}") for f, k, d in node.opts)
        branches += [
            f"        case {_fish_quote(node.path)}",
            f"            set -g {fn}_subs {subs}",
            f"            set -g {fn}_opts {opts}",
            f"            set -g {fn}_pos {' '.join(node.pos)}",
            f"            set -g {fn}_many {int(node.repeat)}",
            f"            set -g {fn}_rest {int(node.rest)}",
        ]
    spec = "\n".join(branches)
    return f"""\
# fish completion for {name}, generated by `{name} completion fish` ({name} {program.version}).
# Install: {name} completion fish > ~/.config/fish/completions/{name}.fish

# Sets, for a command path ($argv[1]): {fn}_subs (NAME<TAB>DESCRIPTION), {fn}_opts
# (--name=KIND<TAB>DESCRIPTION for an option taking a value), {fn}_pos (the positionals'
# KINDs; the last repeats if {fn}_many is 1), {fn}_rest (1: COMMAND [ARG...] may follow --).
function {fn}_spec
    set -g {fn}_subs
    set -g {fn}_opts
    set -g {fn}_pos
    set -g {fn}_many 0
    set -g {fn}_rest 0
    switch "$argv[1]"
{spec}
    end
end

# The KIND of option $argv[1]'s value; nothing for a flag or --name=value.
function {fn}_want
    string match -q -- '*=*' $argv[1]; and return
    for o in ${fn}_opts
        set -l head (string split -m1 \\t -- $o)[1]
        if string match -q -- "$argv[1]=*" $head
            string replace -- "$argv[1]=" '' $head
            return
        end
    end
end

# Candidates for a value of KIND $argv[1], the current token being $argv[2].
function {fn}_values
    set -l credd credd
    set -l program (commandline -opc)[1]
    string match -q -- '*/*' $program
    and set credd (string replace -r '/[^/]*$' '' -- $program)/credd
    switch $argv[1]
        case profile
            set -l envs _CREDD_COMPLETE=profiles
            test -n "${fn}_sock"; and set -a envs CREDD_SOCKET=${fn}_sock
            test -n "${fn}_pol"; and set -a envs CREDD_POLICY=${fn}_pol
            env $envs $credd 2>/dev/null
        case file
            __fish_complete_path $argv[2]
        case directory
            __fish_complete_directories $argv[2] ''
        case command
            __fish_complete_command
        case 'choice:*'
            string split , -- (string replace 'choice:' '' -- $argv[1])
    end
end

function {fn}_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l cmdpath ''
    set -l npos 0
    set -l after 0
    set -l want ''
    set -l last ''
    set -g {fn}_sock ''
    set -g {fn}_pol ''
    {fn}_spec ''
    for w in $tokens[2..-1]
        if test -n "$want"
            switch $last
                case --socket
                    set -g {fn}_sock $w
                case --policy
                    set -g {fn}_pol $w
            end
            set want ''
        else if test $after -gt 0
            set after (math $after + 1)
        else if test "x$w" = x-- -a "${fn}_rest" = 1
            set after 1
        else if string match -q -- '-*' $w
            set last $w
            set want ({fn}_want $w)
        else if test $npos -eq 0; and contains -- $w (string replace -r '\\t.*' '' -- ${fn}_subs)
            set cmdpath (string trim -- "$cmdpath $w")
            {fn}_spec $cmdpath
        else
            set npos (math $npos + 1)
        end
    end
    if test -n "$want"
        {fn}_values $want $cur
    else if test $after -eq 1
        {fn}_values command $cur
    else if test $after -gt 1
        {fn}_values file $cur
    else if string match -q -- '--*=*' $cur
        set -l option (string split -m1 = -- $cur)[1]
        set -l kind ({fn}_want $option)
        if test -n "$kind"
            for value in ({fn}_values $kind (string split -m1 = -- $cur)[2])
                echo "$option=$value"
            end
        end
    else if string match -q -- '-*' $cur
        string replace -r '=[^\\t]*' '' -- ${fn}_opts
    else if test (count ${fn}_subs) -gt 0 -a $npos -eq 0
        printf '%s\\n' ${fn}_subs
    else if test $npos -lt (count ${fn}_pos)
        {fn}_values ${fn}_pos[(math $npos + 1)] $cur
    else if test "${fn}_many" = 1 -a (count ${fn}_pos) -gt 0
        {fn}_values ${fn}_pos[-1] $cur
    end
end

complete -c {name} -f -a '({fn}_complete)'
"""
