"""The FAQ's questions, their measurable claims, and where deepbasics covers each: one data table.

This module is data, not logic: ``QUESTIONS`` lists every section of the user's FAQ
(``shared/faq/fundamentals-faq.zh.md``) with an English title in our own words, its claims (IDs and
wording follow ``shared/faq/claims.md``; sections marked (+) go beyond the FAQ's text), and two
coverage columns that each issue extends:

- ``modules``: the deepbasics modules that implement the answer;
- ``doctor``: the doctor finding codes that detect the pathology in a user's run, derived from the doctor's
  code table (:data:`deepbasics.doctor.codes.TABLE`, column ``faq``), never listed here by hand.

Which claims the lab measures is not kept here: ``deepbasics faq`` reads it from the lab's registry
(:func:`deepbasics.lab.coverage`), so it cannot drift from the experiments. The FAQ's own answers and their
English gists are in :mod:`deepbasics.faq_answers`. ``tests/test_faq.py`` checks that every module imports and
every doctor code is in the doctor's closed vocabulary, so the table cannot point at something that does not
exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Question:
    """One FAQ section and its coverage."""

    id: str
    title: str
    claims: Mapping[str, str]
    modules: tuple[str, ...] = ()
    beyond_faq: bool = False
    notes: str = field(default="", compare=False)

    @property
    def doctor(self) -> tuple[str, ...]:
        """The doctor codes whose reasoning is this question's, read from the doctor's code table."""
        from .doctor.codes import codes_for_question  # lazy: reading the FAQ table does not load the doctor

        return codes_for_question(self.id)


def _q(id: str, title: str, claims: dict[str, str], **coverage: object) -> Question:
    return Question(id=id, title=title, claims=MappingProxyType(claims), **coverage)  # type: ignore[arg-type]


QUESTIONS: tuple[Question, ...] = (
    _q(
        "Q1",
        "How should the initial weights be set?",
        {
            "Q1.a": "Gaussian or uniform initial weights of equal variance train to about the same result.",
            "Q1.b": "The scale of the initial weights strongly affects optimization and generalization.",
            "Q1.c": "Glorot's U(+-sqrt(6/(m+n))) has Var = 2/(m+n) and keeps activation and gradient variance "
            "roughly constant across tanh/linear layers.",
            "Q1.d": "(+) He initialization does the same for ReLU units.",
            "Q1.e": "Random orthogonal initialization preserves norms through depth, so deep linear nets train at a "
            "depth-independent speed, unlike Gaussian initialization.",
            "Q1.f": "(+) Zero or constant initialization never breaks the symmetry between the units of a layer.",
        },
        modules=("deepbasics.init", "deepbasics.doctor"),
    ),
    _q(
        "Q2",
        "Why is the Gaussian the default choice of distribution?",
        {
            "Q2.a": "Central limit theorem: standardized sums of n independent variables approach a normal "
            "distribution, the distance shrinking roughly like 1/sqrt(n).",
            "Q2.b": "Among all real distributions with a given variance, the normal has the largest entropy.",
            "Q2.c": "The univariate and multivariate normal densities are as the FAQ writes them.",
        },
        modules=("deepbasics.gaussian",),
    ),
    _q(
        "Q3.1",
        "What is ill-conditioning and how is it avoided?",
        {
            "Q3.1.a": "Gradient-descent iterations to a given accuracy grow with the Hessian's condition number.",
            "Q3.1.b": "Preconditioning turns an ill-conditioned problem into one solved in far fewer iterations.",
            "Q3.1.c": "Mini-batch SGD, learning-rate schedules and momentum reduce the iterations needed.",
            "Q3.1.d": "Unnormalized inputs, uneven layers and bad init scale cause ill-conditioning; normalizing the "
            "inputs lowers a real network's Hessian condition number.",
        },
        modules=(
            "deepbasics.optim",
            "deepbasics.data",
            "deepbasics.curvature",
            "deepbasics.doctor",
            "deepbasics.autodiff",
        ),
    ),
    _q(
        "Q3.2",
        "What are saddle points and how are they escaped?",
        {
            "Q3.2.a": "In high-dimensional non-convex losses, critical points are mostly saddles, more so at "
            "higher loss.",
            "Q3.2.b": "At a saddle point the gradient is zero and the Hessian is indefinite.",
            "Q3.2.c": "Adaptive methods (AdaDelta, Adam) escape saddle points faster than plain gradient descent.",
        },
        modules=("deepbasics.optim", "deepbasics.curvature", "deepbasics.doctor", "deepbasics.autodiff"),
    ),
    _q(
        "Q3.3",
        "Why do gradients vanish or explode, and what helps?",
        {
            "Q3.3.a": "In a deep sigmoid network the gradient norm shrinks exponentially towards the input layer.",
            "Q3.3.b": "So layers near the output learn while layers near the input barely move.",
            "Q3.3.c": "The sigmoid's derivative sigma(z)(1 - sigma(z)) is at most 0.25 and vanishes on saturation.",
            "Q3.3.d": "Deep networks with too-large initial weights have exploding gradients.",
            "Q3.3.e": "Gradient clipping keeps training stable where gradients explode.",
            "Q3.3.f": "An L2 penalty keeps weights small and limits gradient explosion.",
            "Q3.3.g": "Batch normalization mitigates vanishing gradients.",
            "Q3.3.h": "ReLU (derivative 1 for positive inputs) mitigates vanishing/exploding gradients and speeds "
            "training.",
            "Q3.3.i": "Skip connections (ResNet) and LSTMs mitigate vanishing gradients.",
            "Q3.3.j": "In practice vanishing gradients are more common than exploding ones.",
        },
        modules=(
            "deepbasics.activations",
            "deepbasics.nn",
            "deepbasics.train",
            "deepbasics.optim",
            "deepbasics.probe",
            "deepbasics.doctor",
        ),
    ),
    _q(
        "Q4",
        "Why give up convexity by adding hidden layers?",
        {
            "Q4.a": "Even a one-hidden-layer network has a non-convex training loss.",
            "Q4.b": "Plain gradient descent still finds minima that are good enough, consistently across seeds.",
            "Q4.c": "A maxout unit approximates any convex function, the error falling with more pieces.",
        },
        modules=("deepbasics.activations", "deepbasics.curvature", "deepbasics.train"),
    ),
    _q(
        "Q5",
        "Why does cross-entropy beat mean squared error with sigmoid and softmax outputs?",
        {
            "Q5.a": "With saturated sigmoid/softmax outputs MSE's gradient is tiny when wrong; cross-entropy's "
            "stays proportional to the error, so the network trains faster.",
        },
        modules=("deepbasics.losses", "deepbasics.doctor"),
    ),
    _q(
        "Q6",
        "Why do L1 and L2 regularization prevent overfitting?",
        {
            "Q6.a": "L1 and L2 prefer smaller weights; L1 also drives many weights to (near) zero.",
            "Q6.b": "With the penalty an over-parameterized model overfits less.",
        },
        modules=("deepbasics.losses", "deepbasics.train"),
    ),
    _q(
        "Q7",
        "How are entropy, KL divergence and cross-entropy related?",
        {
            "Q7.a": "H(p, q) = H(p) + KL(p || q); KL >= 0 with equality only at p = q; KL is asymmetric.",
            "Q7.b": "Minimizing cross-entropy over q is minimizing KL(p || q); the minimizer is q = p.",
            "Q7.c": "Minimizing a classifier's cross-entropy is maximum likelihood.",
        },
        modules=("deepbasics.information", "deepbasics.losses"),
        beyond_faq=True,
    ),
    _q(
        "Q8",
        "How are overflow and underflow avoided? The softmax example",
        {
            "Q8.a": "Naive softmax overflows for large inputs; subtracting max(x) fixes it and softmax is "
            "shift-invariant.",
            "Q8.b": "Naive log(softmax(x)) underflows to -inf; log-softmax through log-sum-exp stays finite.",
        },
        modules=("deepbasics.numerics", "deepbasics.nonfinite", "deepbasics.doctor"),
    ),
    _q(
        "Q9",
        "Why does an LSTM do better than a plain RNN?",
        {
            "Q9.a": "An LSTM learns dependencies over much longer lags than a plain RNN.",
            "Q9.b": "The gradient reaching early time steps decays much faster in a plain RNN.",
            "Q9.c": "The LSTM does not prevent exploding gradients; clipping is still needed.",
        },
        modules=("deepbasics.nn", "deepbasics.data"),
    ),
    _q(
        "Q10",
        "How is overfitting cured in deep networks?",
        {
            "Q10.a": "Dropout, L1/L2, batch normalization, augmentation, early stopping and ensembling each lower "
            "test error on an over-parameterized model trained on little data.",
        },
        modules=("deepbasics.nn", "deepbasics.train", "deepbasics.data", "deepbasics.doctor"),
    ),
    _q(
        "Q11",
        "What are the Jacobian and the Hessian, and why do they matter?",
        {
            "Q11.a": "Autodiff Jacobians and Hessians agree with finite differences; the Hessian is symmetric.",
            "Q11.b": "The second-order Taylor expansion predicts the loss change for small steps; first order "
            "misses the curvature.",
            "Q11.c": "Gradient descent diverges along the top eigenvector once lr > 2 / lambda_max.",
        },
        modules=("deepbasics.autodiff", "deepbasics.curvature", "deepbasics.doctor"),
        beyond_faq=True,
    ),
    _q(
        "Q12",
        "Why is the Gaussian so widely used? (repeats Q2)",
        {},
        modules=("deepbasics.gaussian",),
        notes="The FAQ repeats Q2's answer; its claims are Q2.a-c.",
    ),
    _q(
        "Q13",
        "How does the batch size affect mini-batch SGD?",
        {
            "Q13.a": "Larger batches estimate the gradient better, with error falling like 1/sqrt(B).",
            "Q13.b": "Smaller batches generalize better (the FAQ: best at 1) but need a smaller learning rate.",
            "Q13.c": "Memory grows linearly with batch size.",
            "Q13.d": "Some hardware runs power-of-two batch sizes faster.",
            "Q13.e": "Very small batches waste a multi-core machine: time per sample rises below a minimum batch.",
            "Q13.f": "(+) The gradient noise scale predicts the critical batch size.",
        },
        modules=("deepbasics.noise", "deepbasics.doctor"),
    ),
    _q(
        "Q14",
        "What is batch normalization good for, and where does it fail?",
        {
            "Q14.a": "Batch normalization reduces the dependence on the initialization.",
            "Q14.b": "It trains faster and tolerates higher learning rates.",
            "Q14.c": "It has a regularizing effect.",
            "Q14.d": "It degrades at small batch sizes, unlike layer or group normalization.",
            "Q14.e": "It does not suit recurrent networks; layer normalization does.",
        },
        modules=("deepbasics.nn", "deepbasics.doctor"),
    ),
    _q(
        "Q15",
        "(+) Update rules and activation functions",
        {
            "Q15.a": "Momentum and adaptive optimizers compared with plain SGD on the same tasks and budgets.",
            "Q15.b": "Learning-rate schedules (step, cosine, warm-up) compared with a constant rate.",
            "Q15.c": "Activation functions compared on trainable depth and speed; dying ReLUs and leaky variants.",
        },
        modules=("deepbasics.activations", "deepbasics.optim", "deepbasics.doctor"),
        beyond_faq=True,
    ),
    _q(
        "CNN",
        "(+) Convolutional networks",
        {
            "CNN.a": "Weight sharing: a CNN matches an MLP's accuracy with far fewer parameters.",
            "CNN.b": "Convolution is translation-equivariant; pooling adds local invariance.",
            "CNN.c": "The receptive field grows with depth, dilation and stride.",
            "CNN.d": "Data augmentation improves test accuracy on small image sets.",
        },
        modules=("deepbasics.nn", "deepbasics.data"),
        beyond_faq=True,
    ),
    _q(
        "RNN",
        "(+) Recurrent networks",
        {
            "RNN.a": "Truncated BPTT trades the longest learnable dependency for speed and memory.",
            "RNN.b": "A GRU, like the LSTM, learns long lags that a plain RNN cannot.",
            "RNN.c": "Gradient clipping makes recurrent training stable where it would diverge.",
            "RNN.d": "Layer normalization inside the recurrent cell speeds up and stabilizes training.",
        },
        modules=("deepbasics.nn", "deepbasics.data", "deepbasics.optim"),
        beyond_faq=True,
    ),
    _q(
        "REF",
        "(+) Reproductions of published results",
        {
            "REF.mnist1d": "Our reference models reproduce MNIST-1D's published test accuracies (Greydanus & Kobak).",
        },
        modules=("deepbasics.data",),
        beyond_faq=True,
        notes="Not claims of the FAQ (so not in claims.md): checks that the lab's tasks and training recipes "
        "give the numbers their authors published.",
    ),
    _q(
        "practice",
        "(+) Training-loop bugs practitioners report most (zero_grad, optimizer wiring, eval mode, double softmax)",
        {},
        modules=("deepbasics.doctor",),
        beyond_faq=True,
        notes="No FAQ claims: the doctor's codes from practice (issue 14), each documented in its code table with "
        "the evidence it reads and the fix. The lab measures FAQ claims only.",
    ),
)

#: claim ID -> claim text, over all questions.
CLAIMS: Mapping[str, str] = MappingProxyType({cid: text for q in QUESTIONS for cid, text in q.claims.items()})


def question_of(claim_id: str) -> Question:
    """Return the question a claim ID belongs to (``"Q3.3.a"`` -> the Q3.3 question)."""
    for q in QUESTIONS:
        if claim_id in q.claims:
            return q
    known = ", ".join(sorted(CLAIMS))
    raise ValueError(f"claim_id: expected a known claim ID, got {claim_id!r}. Known IDs: {known}.")
