"""The lab: one experiment per FAQ claim, a verdict measured against a rule fixed in advance, and a report.

``deepbasics.lab.run(quick=True)`` (or ``deepbasics lab --quick``) runs every experiment in worker processes
and writes ``lab-report/index.html``, ``report.md`` and ``results.json``; ``experiments()`` lists them.

How to write an experiment
==========================

One module per FAQ question in ``src/deepbasics/lab/experiments/`` (e.g. ``q13_batch_noise.py``); any file
there whose name does not start with ``_`` is found automatically. In it, declare each experiment with
:func:`experiment` on a module-level function ``run(params, seed) -> dict``::

    import numpy as np
    import torch

    from deepbasics.lab import Rule, experiment, save_figure


    def _plot(outputs, params, outdir):
        import matplotlib.pyplot as plt

        sizes = params["sizes"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for seed, out in enumerate(outputs):
            ax.loglog(sizes, out["errors"], marker="o", label=f"seed {seed}")
        ref = [outputs[0]["errors"][0] * (sizes[0] / b) ** 0.5 for b in sizes]
        ax.loglog(sizes, ref, "k--", label="1/sqrt(B)")
        ax.set(xlabel="batch size B (samples)", ylabel="|g_B - g| (L2 norm)", title="Q13.a: gradient error vs B")
        ax.legend()
        return [save_figure(fig, outdir, "error_vs_batch")]


    @experiment(
        ids=("Q13.a",),
        method="Mini-batch gradients of a least-squares loss on synthetic data are compared with the full-batch "
        "gradient for several batch sizes B. The log-log slope of the mean error against B is fitted per seed.",
        quick={"sizes": [4, 16, 64, 256], "repeats": 50},
        full={"sizes": [1, 4, 16, 64, 256, 1024], "repeats": 500},
        rules={"Q13.a": Rule("slope", "<", -0.4)},  # 1/sqrt(B) is a slope of -0.5
        seeds=3,
        timeout=60,
        plot=_plot,
    )
    def batch_noise(params, seed):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(4096, 10, generator=g, dtype=torch.float64)  # (N, D)
        w_true = torch.randn(10, 1, generator=g, dtype=torch.float64)
        y = x @ w_true + torch.randn(4096, 1, generator=g, dtype=torch.float64)  # (N, 1)
        w = torch.zeros(10, 1, dtype=torch.float64)
        full = 2 * x.T @ (x @ w - y) / len(x)  # gradient of the mean squared error, (D, 1)
        errors = []
        for b in params["sizes"]:
            idx = torch.randint(len(x), (params["repeats"], b), generator=g)
            xb, yb = x[idx], y[idx]  # (R, B, D), (R, B, 1)
            gb = 2 * xb.transpose(1, 2) @ (xb @ w - yb) / b  # (R, D, 1)
            errors.append((gb - full).norm(dim=(1, 2)).mean().item())
        slope = float(np.polyfit(np.log(params["sizes"]), np.log(errors), 1)[0])
        return {"slope": slope, "errors": errors}

The contract, each point checked when the module is imported or when the experiment runs:

- ``ids``: one or more sibling claim IDs of one question (from :data:`deepbasics.faq.CLAIMS`); the first
  is the experiment's ``.id``. ``.question`` and ``.claim`` come from :mod:`deepbasics.faq`.
- ``method``: two or three sentences: what is measured, on what data, how it is summarized.
- ``quick`` / ``full``: the parameters of each mode (same keys, JSON values; tuples arrive as lists).
  ``quick`` should finish in seconds: ``deepbasics lab --quick`` runs every experiment this way.
- ``rules``: exactly one :class:`Rule` per claim ID: ``Rule(metric, op, threshold, spread="all_seeds")``
  with ``op`` in ``> < >= <=`` and ``spread`` ``"all_seeds"`` (every seed agrees), ``"ci"`` (the mean's
  t-interval is on one side; needs seeds >= 2) or ``"value"`` (one deterministic number; needs seeds=1).
  The engine computes the verdict (``holds``/``does_not_hold``/``inconclusive``/``error``); ``run``
  never returns one. Choose the threshold from the claim, not from a first run.
- ``run(params, seed)``: use only ``seed`` for randomness (``torch.Generator().manual_seed(seed)``); return
  a dict with every metric a rule names as a finite float, plus any raw series the plot needs (numbers,
  lists, dicts; numpy and torch values are converted). It runs in a worker process with one torch thread.
- ``plot(outputs, params, outdir)`` (optional): ``outputs`` is the list of per-seed dicts; draw with
  matplotlib (Agg), label axes with units, give a title, and return ``[save_figure(fig, outdir, name)]``.
- ``seeds`` (default 3; ``deepbasics lab --seeds N`` overrides, except for ``value`` rules) and
  ``timeout`` (seconds for all seeds and the plot, default 300; a run past it is killed: ``error``).
- Unknown fields are a ``TypeError`` listing the valid ones. Test an experiment directly with
  ``batch_noise.run(batch_noise.params(quick=True), 0)``; the decorator returns the :class:`Experiment`.
"""

# ``from . import experiments`` runs first on purpose: importing the subpackage sets this package's attribute
# ``experiments`` to the module, and the public name must be the function, bound by the import below it.
from . import experiments as _catalog  # noqa: F401  (isort: keep first)
from .figures import save_figure
from .registry import REGISTRY, Experiment, Registry, coverage, experiment, experiments
from .report import write_report
from .result import Result, TaskResult
from .rules import Revision, Rule, Verdict, evaluate
from .runner import run
from .tasks import TASKS, Task, TaskInfo
from .words import Metric

__all__ = [
    "REGISTRY",
    "TASKS",
    "Experiment",
    "Metric",
    "Registry",
    "Result",
    "Revision",
    "Rule",
    "Task",
    "TaskInfo",
    "TaskResult",
    "Verdict",
    "coverage",
    "evaluate",
    "experiment",
    "experiments",
    "run",
    "save_figure",
    "write_report",
]
