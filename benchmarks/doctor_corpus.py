"""The doctor on its calibration corpus: every script of ``benchmarks/doctor_corpus`` through ``deepbasics doctor``.

Each script is run the way a user runs it, ``deepbasics doctor SCRIPT.py --out doctor.json -- --seed N``, as a
subprocess in its own temporary working directory (one intra-op thread each, so ``--jobs`` runs do not fight over
the cores): the broken scripts with seed 0, the healthy ones with seeds 0, 1 and 2. The findings come from the
``doctor.json`` it writes. Only warning and error findings count; info-level advice is listed but never counts.

Per run, against the manifest (``benchmarks/doctor_corpus/manifest.json``: ``cause`` = the codes that name the bug,
``symptoms`` = acceptable downstream codes):

- broken: **cause named** (a cause code found), **symptom only** (no cause code, a symptom code found), **missed**;
  codes outside both lists are shown as extras;
- healthy: **clean**, or **false finding** (any warning/error);
- either: **crash** -- ``doctor.json`` missing, a timeout, an exit status other than 0 (ok), 3 (stopped at a
  non-finite loss) or 4 (error findings), a traceback from deepbasics on stderr, or a healthy script stopped as
  non-finite. Every corpus script finishes without an exception on its own and every healthy one stays finite
  (``tests/test_doctor_corpus.py``), so a "script raised" (exit 1) under the doctor is the doctor's doing.

Prints one row per run, the totals (targets of issue 14: cause named >= 95%, 0 false findings on healthy runs,
0 crashes), and the evidence of every false finding: the calibration targets.

Run: ``python benchmarks/doctor_corpus.py [--jobs 2] [--only NAME ...] [--json OUT] [--timeout 600] [--split heldout]``.
``--split heldout`` scores the held-out scripts (``heldout/``, their own manifest), written before the calibration
and meant to be scored once, at its end: a measure of how the thresholds generalize.
Exits 0 whatever the doctor does; non-zero only when the benchmark itself cannot run (bad arguments, no manifest).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "doctor_corpus"
HEALTHY_SEEDS = (0, 1, 2)
BROKEN_SEEDS = (0,)
COUNTED = ("warning", "error")  # info-level findings never count as naming a cause or as false
OK_EXIT = {0, 3, 4}  # ok, stopped at a non-finite loss, error findings (deepbasics.doctor.script.EXIT_CODES)
DEEPBASICS_FRAME = re.compile(r'File "[^"]*[/\\]deepbasics[/\\]')
SEVERITY_MARK = {"error": "E", "warning": "W", "info": "i"}


def load_manifest(split: str = "corpus") -> list[dict[str, Any]]:
    """The manifest's entries; ``split="heldout"``: the held-out scripts (``heldout/``), whose ``script`` fields
    become ``heldout/NAME.py``."""
    folder = CORPUS if split == "corpus" else CORPUS / split
    path = folder / "manifest.json"
    if not path.is_file():
        raise SystemExit(
            f"manifest: expected {path}, not found. Run from a checkout that has benchmarks/doctor_corpus."
        )
    entries = json.loads(path.read_text(encoding="utf-8"))["scripts"]
    if split != "corpus":
        entries = [{**e, "script": f"{split}/{e['script']}"} for e in entries]
    return entries


def run_one(entry: dict[str, Any], seed: int, timeout: float, keep: Path | None = None) -> dict[str, Any]:
    """``deepbasics doctor`` on one script and seed, in a fresh temporary directory; the raw outcome. ``keep``: copy
    the ``doctor.json`` there as ``NAME-sSEED.json`` (the recorded traces, for threshold calibration)."""
    script = CORPUS / entry["script"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLUMNS": "120"}
    with tempfile.TemporaryDirectory(prefix="doctor-corpus-") as tmp:
        out = Path(tmp) / "doctor.json"
        command = [
            sys.executable,
            "-m",
            "deepbasics",
            "doctor",
            str(script),
            "--out",
            str(out),
            "--",
            "--seed",
            str(seed),
        ]
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
            rc, stderr = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired:
            rc, stderr = None, ""
        seconds = time.perf_counter() - started
        report = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else None
        if keep is not None and report is not None:
            name = entry["script"].removesuffix(".py").replace("/", "-")
            (keep / f"{name}-s{seed}.json").write_text(out.read_text(encoding="utf-8"), encoding="utf-8")
    return {"rc": rc, "stderr": stderr[-4000:], "report": report, "seconds": seconds}


def findings_of(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every finding of every watched model: model, code, severity, where, evidence."""
    if report is None:
        return []
    rows = []
    for model in report.get("models", []):
        for f in model.get("findings", []):
            rows.append({"model": model.get("name", "?"), **{k: f.get(k) for k in ("code", "severity", "where")}})
            rows[-1]["evidence"] = f.get("evidence", {})
    return rows


def crash_reason(entry: dict[str, Any], raw: dict[str, Any]) -> str | None:
    """Why this run counts as a doctor crash (module docstring), or None."""
    report = raw["report"]
    if raw["rc"] is None:
        return "timeout"
    if DEEPBASICS_FRAME.search(raw["stderr"]) or (report and DEEPBASICS_FRAME.search(report.get("traceback") or "")):
        return "traceback from deepbasics"
    if raw["rc"] not in OK_EXIT:
        last_line = (raw["stderr"].strip().splitlines() or [""])[-1]
        return f"exit {raw['rc']}: {(report or {}).get('error') or last_line}"
    if report is None:
        return "no doctor.json"
    if entry["kind"] == "healthy" and report.get("status") == "nonfinite":
        return "a healthy script stopped as non-finite"
    return None


def classify(entry: dict[str, Any], seed: int, raw: dict[str, Any]) -> dict[str, Any]:
    """One table row: the run's codes and its class (module docstring)."""
    found = findings_of(raw["report"])
    counted = {f["code"] for f in found if f["severity"] in COUNTED}
    cause, symptoms = set(entry["cause"]), set(entry["symptoms"])
    crash = crash_reason(entry, raw)
    if crash:
        klass = "crash"
    elif entry["kind"] == "healthy":
        klass = "false finding" if counted else "clean"
    elif counted & cause:
        klass = "cause named"
    elif counted & symptoms:
        klass = "symptom only"
    else:
        klass = "missed"
    report = raw["report"] or {}
    return {
        "script": entry["script"],
        "seed": seed,
        "kind": entry["kind"],
        "cause": sorted(cause),
        "symptoms": sorted(symptoms),
        "found": [{"code": f["code"], "severity": f["severity"], "model": f["model"]} for f in found],
        "extra": sorted(counted - cause - symptoms) if entry["kind"] == "broken" else [],
        "false": [f for f in found if entry["kind"] == "healthy" and f["severity"] in COUNTED],
        "class": klass,
        "crash": crash,
        "status": report.get("status"),
        "exit_code": raw["rc"],
        "models": len(report.get("models", [])),
        "seconds": round(raw["seconds"], 1),
    }


def _codes(row: dict[str, Any]) -> str:
    seen: dict[str, str] = {}
    for f in row["found"]:  # strongest severity per code
        mark = SEVERITY_MARK.get(f["severity"], "?")
        if f["code"] not in seen or "iWE".index(mark) > "iWE".index(seen[f["code"]]):
            seen[f["code"]] = mark
    return ", ".join(f"{code}:{mark}" for code, mark in sorted(seen.items())) or "-"


def line(row: dict[str, Any]) -> str:
    expected = "/".join(row["cause"]) or "(healthy)"
    note = row["crash"] or (f"extra: {', '.join(row['extra'])}" if row["extra"] else "")
    if row["models"] == 0 and not row["crash"]:
        note = (note + "; " if note else "") + "no model watched"
    name = row["script"].removesuffix(".py")
    return f"{name:38s} s{row['seed']} {row['class']:13s} {expected:42s} {_codes(row):60s} {note}"


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    broken = [r for r in rows if r["kind"] == "broken"]
    healthy = [r for r in rows if r["kind"] == "healthy"]
    count = {k: sum(r["class"] == k for r in broken) for k in ("cause named", "symptom only", "missed", "crash")}
    return {
        "broken_runs": len(broken),
        "cause_named": count["cause named"],
        "cause_named_pct": round(100 * count["cause named"] / len(broken), 1) if broken else None,
        "symptom_only": count["symptom only"],
        "missed": count["missed"],
        "healthy_runs": len(healthy),
        "healthy_runs_with_false_findings": sum(r["class"] == "false finding" for r in healthy),
        "false_findings": sum(len(r["false"]) for r in healthy),
        "crashes": sum(r["class"] == "crash" for r in rows),
    }


def print_report(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    print()
    found = "found (E error, W warning, i info)"
    print(f"{'script':38s} {'seed':2s} {'class':13s} {'expected cause':42s} {found:60s} note")
    for row in rows:
        print(line(row))
    s = summary
    print()
    if s["broken_runs"]:
        print(f"broken scripts: {s['broken_runs']} | cause named {s['cause_named']} ({s['cause_named_pct']}%) | "
              f"symptom only {s['symptom_only']} | missed {s['missed']}")  # fmt: skip
    if s["healthy_runs"]:
        print(f"healthy runs: {s['healthy_runs']} | with a false warning/error finding "
              f"{s['healthy_runs_with_false_findings']} ({s['false_findings']} false findings)")  # fmt: skip
    print(f"doctor crashes: {s['crashes']}")
    false = [(r, f) for r in rows for f in r["false"]]
    if false:
        print("\nfalse findings on healthy runs (the calibration targets):")
        for row, f in false:
            evidence = json.dumps(f["evidence"], default=str)
            print(f"  {row['script']} s{row['seed']} [{f['model']}] {f['code']} ({f['severity']}): {evidence}")
    crashes = [r for r in rows if r["crash"]]
    if crashes:
        print("\ncrashes:")
        for r in crashes:
            print(f"  {r['script']} s{r['seed']}: {r['crash']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2)")
    parser.add_argument("--only", action="append", default=[], help="script name (without .py); repeatable")
    parser.add_argument("--json", type=Path, default=None, help="write the rows and totals to this JSON file")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per run before it counts as a crash")
    parser.add_argument("--keep", type=Path, default=None, help="keep every run's doctor.json in this folder")
    parser.add_argument(
        "--split",
        choices=("corpus", "heldout"),
        default="corpus",
        help="corpus (the calibration scripts, default) or heldout (scored once, at the end of a calibration)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs: expected a positive integer, got {args.jobs}")
    if importlib.util.find_spec("deepbasics") is None:
        parser.error(f"deepbasics is not importable by {sys.executable}: run this with the project's environment")
    entries = load_manifest(args.split)
    names = {e["script"].removesuffix(".py") for e in entries}
    if args.split != "corpus":  # held-out names may be given with or without their folder
        args.only = [n if n.startswith(f"{args.split}/") else f"{args.split}/{n}" for n in args.only]
    unknown = sorted(set(args.only) - names)
    if unknown:
        parser.error(f"--only: unknown script(s) {unknown}; known: {', '.join(sorted(names))}")
    chosen = [e for e in entries if not args.only or e["script"].removesuffix(".py") in args.only]
    runs = [(e, s) for e in chosen for s in (HEALTHY_SEEDS if e["kind"] == "healthy" else BROKEN_SEEDS)]
    print(f"{len(runs)} doctor runs ({len(chosen)} scripts), {args.jobs} at a time", flush=True)
    rows = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
        futures = {pool.submit(run_one, e, s, args.timeout, args.keep): (e, s) for e, s in runs}
        for future in as_completed(futures):
            entry, seed = futures[future]
            rows.append(classify(entry, seed, future.result()))
            print(f"[{len(rows):3d}/{len(runs)}] {rows[-1]['seconds']:6.1f}s {line(rows[-1])}", flush=True)
    order = {(e["script"], s): i for i, (e, s) in enumerate(runs)}
    rows.sort(key=lambda r: order[(r["script"], r["seed"])])
    summary = totals(rows)
    print_report(rows, summary)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "totals": summary}, indent=1, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
