"""The project's own promises: the README's three lines are what CI runs, and every command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from repro.cli import cli

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.strip().splitlines()]


def test_readme_first_lines_are_install_demo_and_the_whole_test_suite():
    install, demo, tests = _readme_commands()
    assert install.startswith("python3 -m venv .venv") and "pip install -e" in install
    assert demo == ".venv/bin/repro demo"
    assert tests == '.venv/bin/python -m pytest -q -m "slow or not slow"'  # slow tests included


def test_ci_runs_the_readme_install_and_test_commands():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    install, _, tests = _readme_commands()
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', install).group(1)
    assert f'-e ".[{extras}]"' in ci and "torch==2.13.0" in ci
    assert ci.rstrip().splitlines()[-1] == tests


def test_plain_pytest_deselects_slow_tests_and_markers_are_strict():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "--strict-markers" in text and "-m 'not slow'" in text


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        assert command.help and len(command.help.split()) > 5, name
        assert "repro " in command.help, f"`repro {name} --help` shows no example"
