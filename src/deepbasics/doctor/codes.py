"""The doctor's closed vocabulary as ONE declarative table: a :class:`CodeSpec` row per finding code.

Everything else about a code is derived from its row: the :class:`~deepbasics.doctor.findings.Finding` validation
and ``Finding.faq``; the explanation and fix text (:mod:`.explain`); which codes a later check replaces
(``transient``); which symptom a cause explains away (``explained_by``, used by ``run_detectors``); the fixes
``repair`` tries and the order in which it treats codes (the table's row order: causes before the symptoms they
produce); ``deepbasics faq``'s doctor codes per question (:attr:`deepbasics.faq.Question.doctor`); the fault zoo's
coverage rule (codes ``seen_by`` diagnose need a broken setup); and the reference shown by
``deepbasics doctor --codes`` (:func:`markdown`).

Adding a code: one row here, one detector registered in :mod:`deepbasics.doctor.detectors` (a decorator, see
:mod:`.detectors.registry`), its decision numbers in :mod:`.thresholds`, and its tests.

``faq`` is the FAQ question whose reasoning explains the code (``shared/faq/claims.md``), or ``"practice"`` for
the bugs PyTorch users report most that the FAQ does not discuss (a ``zero_grad`` left out, an optimizer that
does not hold the trained parameters, a model left in ``eval()`` while training).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "PRACTICE",
    "SEEN_BY",
    "TABLE",
    "CodeSpec",
    "Severity",
    "codes_for_question",
    "markdown",
    "spec",
]

#: ``CodeSpec.faq`` of codes that come from practice rather than from a FAQ question.
PRACTICE = "practice"
#: Where a code can be found: ``diagnose`` (static checks + probe run), ``watch`` (a session on your loop, the
#: training callbacks), ``script`` (``deepbasics doctor SCRIPT.py``).
SEEN_BY: tuple[str, ...] = ("diagnose", "watch", "script")
_ALL = frozenset(SEEN_BY)
_RUNTIME = frozenset({"watch", "script"})


class Severity(str, enum.Enum):
    """How urgent a finding is: ``error`` breaks training, ``warning`` slows or hurts it, ``info`` advises."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class CodeSpec:
    """One finding code and everything the doctor derives from it.

    Attributes:
        code: the code (snake_case), e.g. ``"vanishing_gradient"``.
        faq: the FAQ question id (``"Q3.3"``) whose reasoning explains it, or :data:`PRACTICE`.
        severity: the default severity (a detector may raise or lower it for a given run, e.g. ``dead_relu`` is an
            error when nothing passes the layer).
        transient: the finding describes the run *now* (a loss trend, a fraction over the whole run): each check
            replaces it instead of accumulating it.
        title: one line for tables and the HTML report.
        explanation: two or three sentences in our words with the FAQ reasoning (a detector prepends this run's
            numbers).
        fix: a concrete action with a code snippet.
        candidates: the fixes ``repair`` tries for it, best first (names of
            :data:`deepbasics.doctor.fixes.FIXES`; ``"he_or_glorot"`` picks by the activations).
        explained_by: codes whose presence explains this one away (the symptom is reported through its cause).
        seen_by: where it can be found, a subset of :data:`SEEN_BY`.
    """

    code: str
    faq: str
    severity: Severity
    transient: bool
    title: str
    explanation: str
    fix: str
    candidates: tuple[str, ...] = ()
    explained_by: tuple[str, ...] = ()
    seen_by: frozenset[str] = field(default=_ALL)

    def __post_init__(self) -> None:
        if not self.code.isidentifier() or self.code != self.code.lower():
            raise ValueError(f"CodeSpec.code: expected a snake_case identifier, got {self.code!r}.")
        if self.faq != PRACTICE and not self.faq.startswith(("Q", "CNN", "RNN")):
            raise ValueError(f"CodeSpec.faq of {self.code}: expected a question id or 'practice', got {self.faq!r}.")
        object.__setattr__(self, "severity", Severity(self.severity))
        object.__setattr__(self, "seen_by", frozenset(self.seen_by))
        unknown = self.seen_by - _ALL
        if unknown or not self.seen_by:
            raise ValueError(f"CodeSpec.seen_by of {self.code}: expected a non-empty subset of {SEEN_BY}.")

    @property
    def practice(self) -> bool:
        """True for codes from practice (no FAQ question)."""
        return self.faq == PRACTICE


_S = Severity
# fmt: off
#: The table, in root-cause order: ``repair`` treats the codes of a diagnosis in this order, because a wrong
#: loss/activation pairing, a broken training loop or unnormalized inputs explain many later symptoms.
TABLE: tuple[CodeSpec, ...] = (
    CodeSpec(
        "naive_softmax", "Q8", _S.WARNING, False,
        "softmax computed as exp(x) / sum(exp(x)) without subtracting max(x)",
        "The model computes softmax as exp(x) / sum(exp(x)): exp overflows to inf for inputs above ~88.7 "
        "(float32) and the division gives nan. Subtracting max(x) first gives the same result without overflow "
        "(FAQ Q8.a).",
        "Use the stable forms: torch.softmax(x, dim) / F.log_softmax(x, dim), or subtract the max first: "
        "e = torch.exp(x - x.amax(dim, keepdim=True)); p = e / e.sum(dim, keepdim=True) "
        "(deepbasics.numerics.softmax).",
        candidates=("stable_softmax",),
    ),
    CodeSpec(
        "loss_activation_mismatch", "Q5", _S.WARNING, False,
        "the output activation does not match the loss (or the loss applies it again)",
        "The model's output activation does not match the loss: CrossEntropyLoss and BCEWithLogitsLoss expect "
        "raw logits and apply log-softmax/sigmoid themselves, so a Softmax or Sigmoid before them squashes the "
        "outputs twice and flattens the gradients; NLLLoss expects log-probabilities, not probabilities; and MSE on "
        "a sigmoid/softmax output gives vanishing gradients for confident wrong answers (FAQ Q5).",
        "Return raw logits from the model: remove the final nn.Softmax/nn.LogSoftmax before nn.CrossEntropyLoss "
        "and the final nn.Sigmoid before nn.BCEWithLogitsLoss; feed NLLLoss with F.log_softmax(logits, 1); train "
        "classifiers with cross-entropy instead of MSE.",
        candidates=("fix_output",),
    ),
    CodeSpec(
        "missing_zero_grad", PRACTICE, _S.ERROR, True,
        "gradients carried over from before the previous optimizer step (or wiped before the step)",
        "PyTorch accumulates gradients: backward() adds to .grad and nothing clears it but zero_grad(). Without a "
        "zero_grad() per optimizer step each step uses the sum of all past gradients, so the effective step grows "
        "with time and points at where the model was, not where it is; a zero_grad() placed between backward() "
        "and step() instead wipes the gradient, and the optimizer never learns. Gradient accumulation (several "
        "backward passes, one step, then zero_grad) is fine.",
        "Call optimizer.zero_grad() once per optimizer step, before the backward pass (or right after step()): "
        "optimizer.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); optimizer.step(). To accumulate over "
        "k batches, divide the loss by k and call step() and zero_grad() every k-th batch.",
        seen_by=_RUNTIME,
    ),
    CodeSpec(
        "parameters_not_updated", PRACTICE, _S.ERROR, True,
        "trainable parameters receive gradients but no optimizer updates them (or an optimizer steps nothing)",
        "These parameters require gradients and receive them, but no optimizer holds them and nothing else changes "
        "them: the optimizer was built before the layer was replaced, on another instance of the model, on a subset "
        "of the parameters, or its step() is never called. They keep their initial values, so that part of the "
        "model never learns.",
        "Build the optimizer after the model is final and on the model you train: "
        "optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3); for a new head add its parameters "
        "(optimizer.add_param_group({'params': head.parameters()})); layers meant to stay frozen should say so "
        "with layer.requires_grad_(False), which also saves their backward work.",
        explained_by=("missing_zero_grad",),  # a zero_grad between backward and step leaves the optimizer idle
        seen_by=_RUNTIME,
    ),
    CodeSpec(
        "eval_mode_training", PRACTICE, _S.WARNING, True,
        "optimizer steps taken while Dropout/normalization layers are in eval mode",
        "The model is trained while in eval mode (module.training is False): Dropout passes everything, and "
        "BatchNorm normalizes with its running statistics instead of the batch's and never updates them, so the "
        "network trains without the regularization and normalization it was built with. model.eval() for a "
        "validation pass that is never followed by model.train() is the usual cause.",
        "Call model.train() before the training loop of every epoch and model.eval() only around evaluation: "
        "model.train(); for x, y in train_loader: ...; model.eval(); with torch.no_grad(): evaluate(...).",
        seen_by=_RUNTIME,
    ),
    CodeSpec(
        "unnormalized_inputs", "Q3.1", _S.WARNING, False,
        "input features far from zero mean and unit variance",
        "Input features are far from zero mean and unit variance. Large or unevenly scaled inputs make the "
        "Hessian ill-conditioned and saturate the first layer (FAQ Q3.1.d; LeCun et al. 1998).",
        "Standardize each feature with training-set statistics: mean, std = x_train.mean(0), x_train.std(0); "
        "x = (x - mean) / (std + 1e-8) (deepbasics.data.Standardizer does this).",
        candidates=("standardize_inputs",),
    ),
    CodeSpec(
        "batchnorm_small_batch", "Q14", _S.WARNING, False,
        "BatchNorm trained with batches under 16 examples",
        "BatchNorm normalizes with the mean and variance of the current batch; with fewer than 16 examples these "
        "estimates are noisy and differ from the running averages used at evaluation, which hurts accuracy "
        "(FAQ Q14.d).",
        "Use batches of 16 or more, or a batch-independent normalization: nn.GroupNorm(num_groups, C) or "
        "nn.LayerNorm(features) (deepbasics.nn.GroupNorm, LayerNorm).",
        candidates=("batchnorm_to_layer", "larger_batch"),
    ),
    CodeSpec(
        "bad_init_scale", "Q1", _S.WARNING, False,
        "initial weights far from the variance-preserving (Glorot/He) scale",
        "Initial weights are far from the scale that keeps activation and gradient variance constant across "
        "layers (Glorot: Var(W) = 2 / (fan_in + fan_out) for tanh/linear units; He: 2 / fan_in for ReLU), so "
        "signals explode or die with depth (FAQ Q1.b-d).",
        "Re-initialize each layer for its activation: deepbasics.init.he_normal_(layer.weight) before ReLU, "
        "deepbasics.init.glorot_uniform_(layer.weight) before tanh/sigmoid or at the output; biases at 0.",
        candidates=("he_or_glorot", "insert_layernorm"),
        seen_by={"diagnose"},
    ),
    CodeSpec(
        "nonfinite", "Q8", _S.ERROR, False,
        "a loss, gradient or activation became inf or nan",
        "A loss, gradient or activation became inf or nan. Floating point has a finite range: exp overflows above "
        "~88.7 in float32, log(0) is -inf, 0/0 is nan, and once one value is non-finite every later operation "
        "inherits it (FAQ Q8).",
        "Locate the first bad operation with deepbasics.nonfinite.locate_nonfinite(lambda: loss_fn(model(x), y)); "
        "use stable forms (F.log_softmax, F.cross_entropy, torch.logsumexp), add eps to denominators, lower the "
        "learning rate or clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).",
        candidates=("stable_softmax", "standardize_inputs", "lr_down", "clip_gradients"),
    ),
    CodeSpec(
        "diverging_loss", "Q11", _S.ERROR, False,
        "the loss grows instead of falling",
        "The loss grows instead of falling. Gradient descent is only stable for learning rates below "
        "2 / lambda_max, lambda_max the largest Hessian eigenvalue; beyond it each step overshoots along the "
        "steepest direction by a growing amount (FAQ Q11.c).",
        "Lower the learning rate (e.g. by 10x): optimizer.param_groups[0]['lr'] *= 0.1; add gradient clipping "
        "(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)) or a learning-rate warm-up.",
        candidates=("lr_down", "clip_gradients", "adam"),
    ),
    CodeSpec(
        "exploding_gradient", "Q3.3", _S.WARNING, False,
        "gradients grow towards the input, or updates larger than the weights",
        "Gradients grow as they travel back towards the input: each layer multiplies them by its weight matrix "
        "and activation slope, so weights that are too large make the product grow exponentially with depth, "
        "and updates overshoot (FAQ Q3.3.d).",
        "Clip the gradient norm before each step: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0); "
        "re-initialize with a variance-preserving scheme (deepbasics.init.he_normal_ for ReLU, glorot_uniform_ "
        "otherwise), lower the learning rate, or add normalization layers.",
        candidates=("he_or_glorot", "clip_gradients", "lr_down", "insert_layernorm"),
    ),
    CodeSpec(
        "vanishing_gradient", "Q3.3", _S.WARNING, False,
        "input-side gradients orders of magnitude smaller than output-side ones",
        "The gradients of the input-side layers are orders of magnitude smaller than those of the output side: "
        "back-propagation multiplies by the activation's slope at every layer, at most 1/4 for a sigmoid, so "
        "early layers barely learn (FAQ Q3.3.a-c).",
        "Replace sigmoid/tanh hidden activations by ReLU (nn.ReLU()), initialize with deepbasics.init.he_normal_, "
        "add BatchNorm/LayerNorm between layers, or use residual connections (deepbasics.nn.resnet_mlp).",
        candidates=("swap_to_relu", "he_or_glorot", "insert_batchnorm", "insert_layernorm", "adam"),
        explained_by=("dead_relu",),  # a dead layer passes no gradient to the layers below it
    ),
    CodeSpec(
        "dead_relu", "Q15", _S.WARNING, False,
        "most units of a ReLU layer output 0 for every example",
        "Most units of a ReLU layer output 0 for every example. A ReLU's slope is 0 for negative inputs, so a "
        "unit that is negative on all data receives no gradient and never recovers; large learning rates and "
        "negative biases cause it (FAQ Q15.c).",
        "Use a leaky variant (nn.LeakyReLU(0.01)) or ELU, lower the learning rate, and start biases at 0 with He "
        "init: nn.init.zeros_(layer.bias); deepbasics.init.he_normal_(layer.weight).",
        candidates=("he_init", "leaky_relu", "lr_down"),
    ),
    CodeSpec(
        "saturated_activation", "Q3.3", _S.WARNING, False,
        "sigmoid/tanh units pinned at their bounds",
        "Sigmoid/tanh units sit at their bounds, where the slope sigma'(z) = sigma(z)(1 - sigma(z)) is almost "
        "0, so almost no gradient passes them; pre-activations that are too large (big weights, unnormalized "
        "inputs) cause it (FAQ Q3.3.c).",
        "Standardize the inputs and re-initialize with Glorot scale (deepbasics.init.glorot_uniform_(w)); consider "
        "ReLU hidden units or a normalization layer before the activation.",
        candidates=("he_or_glorot", "swap_to_relu", "insert_batchnorm", "insert_layernorm"),
    ),
    CodeSpec(
        "saddle_point", "Q3.2", _S.WARNING, True,
        "stalled at a point with a tiny gradient and clearly negative curvature",
        "Training stalled at a point where the gradient is nearly zero but the Hessian has clearly negative "
        "eigenvalues: a saddle point, not a minimum. Plain gradient descent leaves a saddle slowly because the "
        "gradient that would push it off is tiny (FAQ Q3.2).",
        "Break the symmetry: re-initialize with random variance-preserving weights (deepbasics.init.orthogonal_ "
        "or glorot_uniform_) instead of (near-)zero ones, and use momentum or Adam, which leave saddles faster "
        "(FAQ Q3.2.c).",
        candidates=("he_or_glorot", "adam", "lr_up"),
        explained_by=("loss_activation_mismatch",),  # a double softmax flattens the output: a plateau, not a saddle
        seen_by={"diagnose", "watch"},
    ),
    CodeSpec(
        "ill_conditioned", "Q3.1", _S.WARNING, False,
        "Hessian eigenvalues spanning orders of magnitude",
        "The Hessian's eigenvalues span orders of magnitude: the loss is steep in some directions and flat in "
        "others, so a learning rate small enough for the steep ones crawls along the flat ones (FAQ Q3.1: the "
        "condition number is lambda_max / lambda_min).",
        "Standardize the inputs ((x - mean) / std per feature, deepbasics.data.Standardizer), use an adaptive "
        "optimizer (torch.optim.Adam) or momentum, and add normalization layers (BatchNorm/LayerNorm).",
        candidates=("standardize_inputs", "adam", "insert_batchnorm"),
        seen_by={"diagnose", "watch"},
    ),
    CodeSpec(
        "oscillating_loss", "Q3.1", _S.WARNING, True,
        "the loss jumps up and down without a downward trend while still high",
        "The loss jumps up and down without a downward trend while it is still high: steps overshoot the valley "
        "floor and bounce between its walls, the signature of a learning rate near or above 2 / lambda_max "
        "(FAQ Q3.1, Q11.c).",
        "Lower the learning rate (try 3-10x smaller) or use momentum/Adam with a smaller step; a decaying schedule "
        "such as torch.optim.lr_scheduler.CosineAnnealingLR also damps the bouncing.",
        candidates=("lr_halve", "lr_down", "larger_batch", "adam"),
        explained_by=("nonfinite", "diverging_loss", "missing_zero_grad"),
    ),
    CodeSpec(
        "slow_convergence", "Q3.1", _S.WARNING, True,
        "the loss barely decreased over the training budget",
        "The loss has barely decreased over the training budget although it is not at a floor: the steps are too "
        "small for the curvature, or the problem is ill-conditioned (FAQ Q3.1).",
        "Raise the learning rate (try 10x) or switch to Adam: torch.optim.Adam(model.parameters(), lr=1e-3); "
        "standardize the inputs and check for vanishing gradients.",
        candidates=("lr_up", "adam"),
        explained_by=(
            "nonfinite",
            "diverging_loss",
            "oscillating_loss",
            "saddle_point",
            "missing_zero_grad",
            "parameters_not_updated",
        ),
    ),
    CodeSpec(
        "overfitting", "Q10", _S.WARNING, True,
        "the validation loss rises while the training loss falls",
        "The validation loss rises while the training loss keeps falling: the model fits the training examples' "
        "noise instead of what generalizes (FAQ Q10).",
        "Stop early at the best validation loss (deepbasics.train.EarlyStopping), add weight decay "
        "(torch.optim.AdamW(..., weight_decay=1e-2)) or dropout (nn.Dropout(0.2)), use data augmentation or "
        "more data, or a smaller model.",
        candidates=("weight_decay", "early_stopping", "dropout"),
    ),
    CodeSpec(
        "batch_size_advice", "Q13", _S.INFO, True,
        "the batch is far from the critical batch size (gradient noise scale)",
        "The gradient noise scale B_simple = tr(Sigma) / |G|^2 estimates the critical batch size: below it, "
        "larger batches cut the number of steps almost proportionally; far above it they only add compute "
        "(FAQ Q13; McCandlish et al. 2018).",
        "Move the batch size towards the critical batch size (scaling the learning rate with it), e.g. "
        "DataLoader(dataset, batch_size=B_crit); below it larger batches save steps, above it they waste compute.",
        candidates=("larger_batch",),
        seen_by={"diagnose", "watch"},
    ),
)
# fmt: on

_BY_CODE: Mapping[str, CodeSpec] = MappingProxyType({row.code: row for row in TABLE})


def _check_table(rows: Iterable[CodeSpec]) -> None:
    rows = list(rows)
    codes = [r.code for r in rows]
    if len(codes) != len(set(codes)):
        raise RuntimeError(f"deepbasics.doctor.codes: duplicate codes in TABLE: {sorted(codes)}")
    for row in rows:
        unknown = set(row.explained_by) - set(codes)
        if unknown:
            raise RuntimeError(f"deepbasics.doctor.codes: {row.code}.explained_by names unknown codes {unknown}")


_check_table(TABLE)


def spec(code: str) -> CodeSpec:
    """The row of ``code``; an unknown code raises ``ValueError`` listing the vocabulary."""
    try:
        return _BY_CODE[code]
    except (KeyError, TypeError):
        raise ValueError(
            f"code: expected one of {list(_BY_CODE)}, got {code!r}. Add new codes deliberately, as a row of "
            "deepbasics.doctor.codes.TABLE."
        ) from None


def codes_for_question(question: str) -> tuple[str, ...]:
    """The codes whose ``faq`` is ``question`` (``"Q3.3"``, or ``"practice"``), in table order."""
    return tuple(row.code for row in TABLE if row.faq == question)


def markdown() -> str:
    """The code reference as a Markdown table (what ``deepbasics doctor --codes`` prints), derived from TABLE."""
    lines = [
        "| code | FAQ | severity | transient | seen by | what it means | repair tries |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in TABLE:
        seen = ", ".join(s for s in SEEN_BY if s in row.seen_by)
        fixes = ", ".join(row.candidates) or "(a code change: see the fix)"
        lines.append(
            f"| `{row.code}` | {row.faq} | {row.severity.value} | {'yes' if row.transient else 'no'} | {seen} "
            f"| {row.title} | {fixes} |"
        )
    return "\n".join(lines)
