"""`dimwatch --help` and `dimwatch COMMAND --help`: a description, examples, every default."""

import argparse

import pytest

from clients._parser import build_parser
from tests.clients.processes import dimwatch

COMMANDS = ["serve", "worker", "push", "status", "watch", "delete", "demo"]


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_top_level_help_lists_every_command() -> None:
    done = dimwatch("--help")

    assert done.returncode == 0
    assert all(f"    {command} " in done.stdout for command in COMMANDS)
    assert "`dimwatch COMMAND --help` describes each command." in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_has_a_description_and_examples(command: str) -> None:
    done = dimwatch(command, "--help")

    assert done.returncode == 0
    description = done.stdout.split("\n\n")[1]
    assert len(description) > 60
    assert f"examples:\n  dimwatch {command}" in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_states_its_default(command: str) -> None:
    parser = _subparsers()[command]
    flags = (argparse._StoreTrueAction, argparse._HelpAction)
    undocumented = [
        a.option_strings[0]
        for a in parser._actions
        if a.option_strings and not isinstance(a, flags) and "[" not in (a.help or "")
    ]
    assert undocumented == []


def test_push_help_states_the_csv_rules() -> None:
    text = dimwatch("push", "--help").stdout

    for rule in ("a comma unless told otherwise", "is a header, skipped", "finite number"):
        assert rule in text
    assert "Re-running is safe" in text and "--append" in text and "--resume" in text
