"""README's two set-up commands stay true: the test command is the one CI runs, verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- setup -->\s*```bash\n(.*?)```", text, flags=re.S)
    assert block, "README.md lost its '<!-- setup -->' block with the two set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_gives_two_setup_commands():
    commands = _commands()
    assert len(commands) == 2, commands
    assert "pip install torch==2.13.0" in commands[0]
    assert "deepbasics" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _commands()[1].strip() in ci_lines


def test_ci_runs_the_quick_lab_from_a_fresh_folder_with_the_default_output():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r'smoke=\$\(mktemp -d\)\n\(cd "\$smoke" && "\$repo/\.venv/bin/deepbasics" lab --quick', ci)
    assert "broken_links" in ci
