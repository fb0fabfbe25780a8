"""Every command's --help ends with examples, and every example parses as that command."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.cli.examples import EXAMPLES


def commands(group: click.Group, path: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(path, group)]
    for name, sub in group.commands.items():
        sub_path = f"{path} {name}".strip()
        if isinstance(sub, click.Group):
            found.extend(commands(sub, sub_path))
        else:
            found.append((sub_path, sub))
    return found


@pytest.mark.parametrize(("path", "command"), commands(main), ids=lambda v: v if isinstance(v, str) else "")
def test_help_shows_an_example(path: str, command: click.Command) -> None:
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert re.search(r"Examples:\n\s+llmmux ", result.output), result.output


@pytest.mark.parametrize("line", [line for lines in EXAMPLES.values() for line in lines])
def test_each_example_parses(line: str) -> None:
    words = shlex.split(line, comments=True)
    assert words[0] == "llmmux"
    command: click.Command = main
    args = words[1:]
    while isinstance(command, click.Group) and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    # Parsing validates option names, choices and arguments without running the command.
    command.make_context(command.name or "llmmux", list(args))


def test_every_example_names_a_command() -> None:
    paths = {path for path, _ in commands(main)}
    assert set(EXAMPLES) <= paths
