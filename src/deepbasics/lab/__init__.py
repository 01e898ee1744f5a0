"""The lab: one experiment per FAQ claim, verdicts measured against rules fixed in advance, and a report.

``deepbasics.lab.run(quick=True)`` (or ``deepbasics lab --quick``) runs every experiment in worker processes
and writes ``lab-report/index.html``, ``report.md`` and ``results.json``; ``experiments()`` lists them.
This docstring is the authors' guide.

How to write an experiment
==========================

Modules live in ``src/deepbasics/lab/experiments/`` and are named by the FAQ section they measure:
``qNN[_M]_<topic>.py`` (``q13_gradient_noise.py``, ``q03_3_vanishing.py``), ``cnn_<topic>.py``, ``rnn_<topic>.py``,
``ref_<topic>.py``; code shared by several modules goes in ``_<what>.py`` (see :mod:`deepbasics.lab.experiments`;
keep modules under 400 lines). Any file whose name does not start with ``_`` is found automatically. In it,
declare each experiment with :func:`experiment` on a module-level function ``run(params, seed) -> dict``::

    import numpy as np
    import torch

    from deepbasics.lab import Metric, Rule, experiment, save_figure


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
        rules={"Q13.a": Rule("slope", "<", -0.4, since="0.2.0")},  # 1/sqrt(B) is a slope of -0.5
        metrics={"slope": Metric("log-log slope of the gradient error against B")},
        takeaways={"Q13.a": "the mini-batch gradient's error falls like B to the power {slope}"},
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
- ``rules``: exactly one :class:`Rule` per claim ID: ``Rule(metric, op, threshold, spread="all_seeds",
  since="<version>")`` with ``op`` in ``> < >= <=`` and ``spread`` ``"all_seeds"`` (every seed agrees), ``"ci"``
  (the mean's t-interval is on one side; needs seeds >= 2) or ``"value"`` (one deterministic number; needs
  seeds=1). ``since`` is the version the rule is declared in (``deepbasics._version``). The engine computes
  the verdict (``holds``/``does_not_hold``/``inconclusive``/``error``); ``run`` never returns one. Choose the
  threshold from the claim, not from a first run (changing it later needs a history entry, see below).
- ``metrics``: ``{name: Metric(label, unit=..., scale=...)}`` for the judged metric and every metric a takeaway
  uses: the report writes "best CNN test accuracy: 93.1% (mean of 3 seeds, ±0.8)", never ``acc = 0.931``.
  Units: ``"%"`` with ``scale=100`` for fractions, ``"points"`` for differences of percentages, ``"x"`` for
  ratios, ``"decades"``, ``"s"``, ``"steps"``... (:mod:`deepbasics.lab.words`).
- ``takeaways``: ``{claim_id: template}``, one plain-language sentence per claim that states what was measured,
  with ``{metric}`` placeholders (the mean over seeds; also ``{metric.min}``, ``.max``, ``.std``, ``.range`` and
  ``{seeds}``). Never write a result or a verdict into it: the engine fills the numbers per task and the rule
  gives the verdict. ``tests/test_lab_takeaways.py`` renders every template with real quick-mode outputs.
- ``run(params, seed)``: use only ``seed`` for randomness (``torch.Generator().manual_seed(seed)``); return
  a dict with every metric a rule names as a finite float, plus any raw series the plot needs (numbers,
  lists, dicts; numpy and torch values are converted). It runs in a worker process with one torch thread.
- ``plot(outputs, params, outdir)`` (optional): ``outputs`` is the list of per-seed dicts; draw with
  matplotlib (Agg), label axes with units, give a title, and return ``[save_figure(fig, outdir, name)]``.
- ``seeds`` (default 3; ``deepbasics lab --seeds N`` overrides, except for ``value`` rules) and
  ``timeout`` (seconds for all tasks, seeds and plots together, default 300; a run past it is killed: ``error``).
- Unknown fields are a ``TypeError`` listing the valid ones. Test an experiment directly with
  ``batch_noise.run(batch_noise.params(quick=True), 0)``; the decorator returns the :class:`Experiment`.

Measuring a claim on several tasks
==================================

A verdict drawn from one small task can say the opposite of what holds where the claim is meant to apply.
Declare ``tasks=(Task(...), ...)`` (:mod:`deepbasics.lab.tasks`); the engine runs every ``(task, seed)`` pair,
judges each task with the claim's one rule, and combines the task verdicts::

    from deepbasics.lab import Metric, Rule, Task, experiment

    @experiment(
        ids=("CNN.a",),
        method="...",
        tasks=(
            Task("digits", applies=False, why="64 pixels: a small dense layer is already cheap."),
            Task("mnist1d", applies=True, why="built to expose spatial priors", quick={"epochs": 12}),
        ),
        quick={"epochs": 20, "widths": [4, 8]},  # the base; a task overrides some keys in each mode
        full={"epochs": 40, "widths": [4, 8, 16]},
        rules={"CNN.a": Rule("param_ratio", ">", 3.0, since="0.1.0")},
        metrics={"param_ratio": Metric("MLP over CNN parameters at matched accuracy", unit="x")},
        takeaways={"CNN.a": "an MLP needs {param_ratio} the parameters of the smallest CNN that matches it"},
    )
    def weight_sharing(params, seed):
        if params["task"] == "digits":  # run gets {**mode, **task overrides, "task": name}
            ...

- A task name is a key of the shared table :data:`TASKS` (label + one line on its data and size, shown by the
  report); add a row there for a new dataset or setting. ``Task(..., detail="20-layer MLP")`` says what this
  experiment changes on it ("8x8 digits (20-layer MLP)").
- ``applies=True`` marks where the claim is meant to apply (what its literature tests: MNIST-1D, a deeper or
  wider net, longer sequences, more data); at least one task must have it. ``why`` says why, in one sentence.
- Overall verdict: ``holds`` on every task; ``holds`` *scoped* to the tasks where it held if they include an
  intended one ("holds on MNIST-1D; does not hold on 8x8 digits"); ``does_not_hold`` if every intended task
  fails, whatever the others say; ``inconclusive`` if no intended task holds and one is inconclusive;
  ``error`` if any task errs. ``results.json`` stores ``verdict``, ``scope`` (task names or ``null``),
  ``sentence`` and ``tasks: {name: {verdict, reason, metrics, key_number, takeaway, ...}}``.
- ``plot`` is called once per task (``params["task"]`` is set; put the task in the title); figures go to
  ``figures/<id>/<task>/``. Test with ``exp.run(exp.params(quick=True, task="mnist1d"), 0)``.

Converting an experiment to tasks: add ``Task`` entries (one with ``applies=True``), move what differs per
task into overrides, branch in ``run`` (and the plot title) on ``params["task"]``, keep the rule unchanged
(its fingerprint is checked), check the quick run stays within the lab's budget, and run its tests.

Changing a rule after its results were seen
===========================================

Keep the earlier form and say why; the report shows it under the claim::

    Rule("speedup", ">", 1.0, since="0.1.0", history=(
        Revision(changed_in="0.1.0", old=Rule("speedup", ">", 1.0, spread="ci"), reason="..."),
    ))

``Revision(what="metric", was="...")`` records a change of the judged number's definition, ``what="params"``
a change of the experiment's parameters after a look at its results. ``src/deepbasics/lab/rule_fingerprints.json``
records every rule; ``tests/test_lab_fingerprints.py`` fails when a rule differs from it without such a history
entry, and prints the entry to add. After adding it (or a new claim), record with
``python -m deepbasics.lab.fingerprints``.
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
