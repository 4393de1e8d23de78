"""Reading the policy: the file's bytes, then the YAML document. The only home of PyYAML.

`read_policy` is the edge that touches the file, and reads it only when no one
else could have changed it (`credd.policy.trust`); `parse_yaml` is pure. The
document is read with YAML's safe loader only; a key written twice is a
problem (safe_load would silently keep the last), and a syntax error is
located by line and column, 1-based as editors count.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from credd.errors import PolicyError
from credd.policy.trust import policy_problems
from credd.policy.values import Problem

# A policy is a few kilobytes; refusing a huge file keeps a mistake from eating memory.
MAX_POLICY_BYTES = 1 << 20
# PyYAML's safe loader on libyaml's parser, where PyYAML was built with it.
_FAST_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_policy(path: Path) -> str:
    """The policy's text; a PolicyError for a file that is missing, unreadable, huge or not
    UTF-8, or that someone other than the user could change (`credd.policy.trust`)."""
    try:
        with path.open("rb") as stream:
            untrusted = policy_problems(path, os.fstat(stream.fileno()))
            if untrusted:
                raise PolicyError(str(path), untrusted)
            data = stream.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        raise PolicyError(
            str(path), ["the file does not exist; run `credd init` or pass --policy"]
        ) from None
    except IsADirectoryError:
        raise PolicyError(str(path), ["is a directory, not a policy file"]) from None
    except OSError as exc:
        raise PolicyError(
            str(path), [f"cannot be read: {exc.strerror or type(exc).__name__}"]
        ) from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(str(path), [f"is larger than {MAX_POLICY_BYTES} bytes"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            str(path), [f"is not UTF-8 text (byte {exc.start + 1} is not valid)"]
        ) from None


def parse_yaml(text: str) -> tuple[object, list[Problem]]:
    """The document, and what keeps it from being read: syntax errors, keys written twice.

    libyaml parses a 1,000-profile policy in a tenth of the time (it was a third of
    `credd run`'s time to READY, bench/RESULTS.md #6); the same safe constructor
    builds the values. It caps nesting at 1,000 levels itself, so it cannot run
    out of stack. Its error messages differ from PyYAML's, so a document it refuses
    is read again the slow way for the messages people and tests rely on.
    """
    try:
        loader = _FAST_SAFE_LOADER(text)
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return _parse_slowly(text)
    return document, _duplicates(node) if node is not None else []


def _parse_slowly(text: str) -> tuple[object, list[Problem]]:
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        return None, [_yaml_problem(exc)]
    except yaml.YAMLError as exc:
        return None, [Problem("YAML", str(exc))]
    except RecursionError:
        # PyYAML's composer recurses once per nesting level.
        return None, [Problem("top level", "nested too deeply to be a policy")]
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    return document, _duplicates(node) if node is not None else []


def _duplicates(node: yaml.Node) -> list[Problem]:
    """A key written twice: safe_load silently keeps the last, which hides a mistake."""
    found: list[Problem] = []
    seen: set[int] = set()  # aliases share nodes: visit each once (billion laughs)
    # Each node with its place and, under `profiles`, the profile it belongs to.
    stack: list[tuple[yaml.Node, str, str | None]] = [(node, "", None)]
    while stack:
        current, place, profile = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            first_line: dict[str, int] = {}
            for key, value in current.value:
                label = key.value if isinstance(key, yaml.ScalarNode) else None
                if isinstance(label, str) and label != "<<":
                    child = f"{place}.{label}" if place else label
                    owner = label if place == "profiles" else profile
                    line = key.start_mark.line + 1
                    if label in first_line:
                        found.append(
                            Problem(
                                child,
                                f"written twice (lines {first_line[label]} and {line});"
                                " the later one would silently replace the earlier",
                                owner,
                            )
                        )
                    else:
                        first_line[label] = line
                    stack.append((value, child, owner))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((item, f"{place}[{i}]", profile) for i, item in enumerate(current.value))
    return found


def _yaml_problem(exc: yaml.MarkedYAMLError) -> Problem:
    """`line 4, column 7: <problem>`, 1-based, as editors count."""
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
    context = ""
    if exc.context and exc.problem and exc.context_mark is not None:
        context = f" ({exc.context} at line {exc.context_mark.line + 1})"
    return Problem(where, f"{problem}{context}")
