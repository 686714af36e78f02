"""The README's set-up commands are the ones CI runs, and every CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def fenced_lines() -> list[str]:
    """The lines inside the README's fenced code blocks."""
    out, inside = [], False
    for line in README.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside and line.strip():
            out.append(line.strip())
    return out


def test_ci_runs_the_readme_test_command_verbatim():
    commands = [line for line in fenced_lines() if "python -m pytest" in line]
    assert len(commands) == 1, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in ci, "the README's test command and .ci/run disagree"


def test_ci_makes_a_fresh_virtualenv_outside_the_work_tree():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^python3 -m venv \"\$venv\"$", ci, flags=re.MULTILINE)
    assert "mktemp -d" in ci and '. "$venv/bin/activate"' in ci


def test_readme_install_commands_use_the_constraints():
    installs = [line for line in fenced_lines() if "pip install" in line and "-e " in line]
    assert installs and all("-c constraints.txt" in line for line in installs), installs
    pins = (ROOT / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^pytest==", pins, flags=re.MULTILINE) and "torch==2.13.0\n" in pins


def commands(group: click.Group, prefix: str = "kb") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        out.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            out.extend(commands(command, f"{prefix} {name}"))
    return out


def test_every_cli_command_is_in_the_readme():
    from kb.cli import main

    missing = [c for c in commands(main) if c not in README]
    assert missing == []


def test_docs_deploy_shows_the_configuration_files_the_deployment_tests_run():
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```\n(.*?)^```$", guide, flags=re.MULTILINE | re.DOTALL)
    for name in ("haproxy.cfg", "kb.env", "publisher.env", "replica.env"):
        text = (ROOT / "deploy" / name).read_text(encoding="utf-8")
        assert text in blocks, f"docs/deploy.md does not show deploy/{name} as it is"
