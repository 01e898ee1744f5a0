"""The package version, in one place: ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), the package face
re-exports it, and the lab stamps it on every cached record and report without importing the package face.

0.2.0: the lab v2 (issue 15): verdicts per task, rule histories, FAQ answers and takeaways in the report.
"""

__version__ = "0.2.0"
