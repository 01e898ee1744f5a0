"""The doctor on the fault zoo: detection matrix, recall per code, false findings, repair success rate.

For every setup of :mod:`deepbasics.doctor.zoo` (and every seed): ``diagnose`` with the setup's budget, scored
against its ground truth (:meth:`Setup.score`); then, for the broken ones, ``repair`` (fixes on copies,
retrained and verified). Printed:

- the detection matrix, setup x code: ``E`` expected and found, ``.`` expected and missed, ``a`` allowed extra,
  ``F`` false finding (warning/error outside expected and allowed), ``i`` info-level advice;
- recall per code = detected / expected over the broken setups (target 100%);
- false findings on the healthy setups (target 0);
- repair success rate over the broken setups (target >= 95%), with the fixes kept.

Run: ``python benchmarks/doctor_zoo.py [--quick] [--seeds 0 1] [--only NAME ...] [--no-repair] [--json OUT]``.
``--quick`` runs one seed and skips the curvature check (so ``ill_conditioned``/``saddle_point`` are not measured).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import torch

from deepbasics.doctor import zoo
from deepbasics.doctor.codes import TABLE
from deepbasics.doctor.findings import Severity
from deepbasics.doctor.repairing import diagnose_case, repair_case

#: The codes diagnose can find (the code table's seen_by); the practice codes need the user's own loop.
CODES = tuple(row.code for row in TABLE if "diagnose" in row.seen_by)
ABBREV = {code: "".join(part[0] for part in code.split("_")) for code in CODES}


def run(names: list[str], seeds: list[int], curvature: bool, do_repair: bool) -> dict:
    rows = []
    for name in names:
        setup = zoo.get(name)
        for seed in seeds:
            case = setup.build(seed)
            start = time.perf_counter()
            report = diagnose_case(case, seed=seed, curvature=curvature)
            score = setup.score(report.findings)
            row = {
                "setup": name,
                "seed": seed,
                "architecture": setup.architecture,
                "healthy": setup.healthy,
                "expected": sorted(setup.expected),
                "allowed": sorted(setup.allowed),
                "found": sorted(score.found),
                "info": sorted({f.code for f in report.findings if f.severity == Severity.INFO}),
                "missed": sorted(score.missed),
                "false": sorted(score.false),
                "diagnose_seconds": time.perf_counter() - start,
            }
            if do_repair and not setup.healthy:
                start = time.perf_counter()
                result = repair_case(case, report=report, seed=seed, curvature=curvature)
                row["repair"] = {
                    "success": result.success,
                    "applied": [f.name for f in result.applied],
                    "remaining": sorted(result.remaining),
                    "after": sorted(result.after.codes()),
                    "metric": result.metric,
                    "before": result.metrics_before.get(result.metric),
                    "after_metric": result.metrics_after.get(result.metric),
                    "attempts": len(result.attempts),
                    "seconds": time.perf_counter() - start,
                }
            rows.append(row)
            print(_line(row), flush=True)
    return {"rows": rows, **_totals(rows)}


def _line(row: dict) -> str:
    status = "ok " if not row["missed"] and not row["false"] else "BAD"
    text = f"{status} {row['setup']:32s} s{row['seed']} found={row['found']}"
    if row["missed"]:
        text += f" MISSED={row['missed']}"
    if row["false"]:
        text += f" FALSE={row['false']}"
    if "repair" in row:
        r = row["repair"]
        text += f" | repair {'OK' if r['success'] else 'FAIL'} {r['applied']} {r['metric']} "
        text += f"{r['before']:.3g}->{r['after_metric']:.3g} after={r['after']}"
    return text


def _totals(rows: list[dict]) -> dict:
    expected, detected = defaultdict(int), defaultdict(int)
    for row in rows:
        for code in row["expected"]:
            expected[code] += 1
            detected[code] += code not in row["missed"]
    recall = {code: detected[code] / expected[code] for code in CODES if expected[code]}
    healthy = [r for r in rows if r["healthy"]]
    repaired = [r for r in rows if "repair" in r]
    return {
        "recall": recall,
        "overall_recall": sum(detected.values()) / max(1, sum(expected.values())),
        "false_on_healthy": sum(len(r["false"]) for r in healthy),
        "false_on_broken": sum(len(r["false"]) for r in rows if not r["healthy"]),
        "healthy_runs": len(healthy),
        "repair_success_rate": (sum(r["repair"]["success"] for r in repaired) / len(repaired)) if repaired else None,
        "repair_runs": len(repaired),
    }


def _matrix(rows: list[dict]) -> str:
    header = f"{'setup':32s} " + " ".join(f"{ABBREV[c]:>3s}" for c in CODES)
    lines = [header]
    for r in rows:
        cells = []
        for c in CODES:
            if c in r["expected"]:
                cells.append("E" if c not in r["missed"] else ".")
            elif c in r["false"]:
                cells.append("F")
            elif c in r["info"]:
                cells.append("i")
            elif c in r["found"]:
                cells.append("a")
            else:
                cells.append(" ")
        lines.append(f"{r['setup'][:30] + ' s' + str(r['seed']):32s} " + " ".join(f"{x:>3s}" for x in cells))
    legend = ", ".join(f"{ABBREV[c]}={c}" for c in CODES)
    return "\n".join(lines) + f"\nE expected+found, . missed, F false, a allowed extra, i info\n{legend}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed, no curvature check")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--only", nargs="+", default=None, help="setup names")
    parser.add_argument("--no-repair", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the results as JSON to this path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.only or [s.name for s in zoo.setups()]
    seeds = args.seeds[:1] if args.quick else args.seeds
    start = time.perf_counter()
    results = run(names, seeds, curvature=not args.quick, do_repair=not args.no_repair)
    rows = results["rows"]
    print()
    print(_matrix(rows))
    print()
    print("recall per code:", ", ".join(f"{c}={v:.0%}" for c, v in results["recall"].items()))
    print(f"overall recall {results['overall_recall']:.1%} (target 100%)")
    print(f"false findings on {results['healthy_runs']} healthy runs: {results['false_on_healthy']} (target 0); "
          f"on broken runs: {results['false_on_broken']}")  # fmt: skip
    if results["repair_success_rate"] is not None:
        print(f"repair success {results['repair_success_rate']:.1%} of {results['repair_runs']} (target >= 95%)")
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
