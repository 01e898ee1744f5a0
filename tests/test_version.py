"""One version, in deepbasics._version: the package, pyproject and the lab agree, and the lab never imports the face."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import deepbasics
from deepbasics._version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_face_re_exports_the_version():
    assert deepbasics.__version__ == __version__ and re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_pyproject_reads_the_version_from_the_module():
    text = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', text, re.M)
    assert 'version = { attr = "deepbasics._version.__version__" }' in text
    assert not re.search(r'^version = "', text, re.M)


def test_the_lab_engine_never_imports_the_package_face():
    """``from .. import __version__`` in lab/report.py loaded deepbasics/__init__.py, which names the command line.

    The engine (lab/*.py) imports the version from ``.._version``; experiment modules may use the library's
    public modules (``from deepbasics import nn``) like any user.
    """
    lab = ROOT / "src" / "deepbasics" / "lab"
    for path in lab.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                face = (node.level == 2 and node.module is None) or (node.level == 0 and node.module == "deepbasics")
                assert not face, f"{path.name}: imports {[a.name for a in node.names]} from the package face"
