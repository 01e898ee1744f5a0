"""The committed record of every claim's rule, so that no rule changes silently after its results are seen.

``rule_fingerprints.json`` (beside this module) maps each claim ID to the rule in words, its
:attr:`~deepbasics.lab.rules.Rule.fingerprint` and the version it was declared in. :func:`problems` compares the
registered rules with it; ``tests/test_lab_fingerprints.py`` fails on any problem and prints the fix:

- a rule whose fingerprint differs from the recorded one must keep the recorded form in its ``history``
  (``Revision(changed_in=..., old=Rule(...), reason=...)``); then record the new form;
- a new claim's rule must declare ``since`` (the current version) and be recorded;
- a recorded claim that no experiment declares any more is dropped by recording again.

Record with ``python -m deepbasics.lab.fingerprints``. It refuses to record a changed rule that has no history
entry for the recorded form: the file can only move forward with the history that explains it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._version import __version__
from ._files import read_json, write_text_atomic
from .registry import Registry, default_registry

__all__ = ["FILE", "current", "problems", "record"]

#: The committed fingerprints (shipped with the package; read by the test and by :func:`record`).
FILE = Path(__file__).with_name("rule_fingerprints.json")
_COMMAND = "python -m deepbasics.lab.fingerprints"


def current(registry: Registry) -> dict[str, dict[str, Any]]:
    """Claim ID -> ``{"rule", "fingerprint", "since"}`` for every registered claim, in the FAQ's order."""
    out = {}
    for exp in registry.experiments():
        for cid, rule in exp.rules.items():
            out[cid] = {"rule": rule.describe(), "fingerprint": rule.fingerprint, "since": rule.since}
    return out


def _unexplained(registry: Registry, recorded: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Claims whose rule changed from the recorded form without a history entry for that form."""
    found = []
    for exp in registry.experiments():
        for cid, rule in exp.rules.items():
            old = recorded.get(cid)
            if old is None or old["fingerprint"] == rule.fingerprint:
                continue
            if not any(r.old is not None and r.old.fingerprint == old["fingerprint"] for r in rule.history):
                found.append(
                    f"{cid}: its rule changed from `{old['rule']}` (recorded) to `{rule.describe()}` without a "
                    f"history entry for the recorded form. If the change came after its results were seen (or "
                    f"at any time since it was recorded), keep the old form: add to the Rule "
                    f'history=(Revision(changed_in="{__version__}", old={_old_source(old)}, reason="<why>"),) '
                    f"(after any entries it already has), then run `{_COMMAND}`. To undo the change instead, "
                    f"restore `{old['rule']}`."
                )
    return found


def _old_source(old: Mapping[str, Any]) -> str:
    return old.get("source") or f"Rule(...)  # {old['rule']}"


def problems(registry: Registry, recorded: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Everything that differs between the registered rules and the record, each with its fix (empty: all good)."""
    if recorded is None:
        return [f"{FILE.name}: missing or unreadable; run `{_COMMAND}` to record every rule."]
    found = _unexplained(registry, recorded)
    now = current(registry)
    for cid, entry in now.items():
        if entry["since"] is None:
            found.append(
                f'{cid}: its Rule declares no version: add since="{__version__}" (or the version it was '
                f"declared in) to Rule(...)."
            )
        if cid not in recorded:
            found.append(f"{cid}: a new rule `{entry['rule']}`, not recorded yet: run `{_COMMAND}`.")
        elif recorded[cid]["fingerprint"] != entry["fingerprint"] and not any(cid in p for p in found):
            found.append(f"{cid}: its rule changed and its history explains it: run `{_COMMAND}` to record it.")
    found += [
        f"{cid}: recorded, but no experiment declares it any more: run `{_COMMAND}`."
        for cid in recorded
        if cid not in now
    ]
    return found


def record(registry: Registry, path: Path = FILE) -> dict[str, dict[str, Any]]:
    """Write the current rules to ``path``; raise ``ValueError`` if a change lacks its history entry."""
    recorded = read_json(path) or {}
    unexplained = _unexplained(registry, recorded)
    if unexplained:
        raise ValueError("not recorded:\n" + "\n".join(unexplained))
    data = current(registry)
    for exp in registry.experiments():
        for cid, rule in exp.rules.items():
            data[cid]["source"] = rule.source()  # quoted in the fix message if this rule changes later
    write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def main() -> int:
    """``python -m deepbasics.lab.fingerprints``: record every rule of the lab (exit 1 with the fixes if refused)."""
    try:
        data = record(default_registry())
    except ValueError as exc:
        print(f"deepbasics.lab.fingerprints: {exc}", file=sys.stderr)
        return 1
    print(f"recorded {len(data)} rules in {FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
