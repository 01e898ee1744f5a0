"""The FAQ's own answers: the Chinese text of each section, mapped to our question IDs, with an English gist.

The FAQ (``faq_data/fundamentals-faq.zh.md``, a copy of ``shared/faq/fundamentals-faq.zh.md`` shipped with
the package) is split into sections at its Markdown headings. A numbered heading (``## 13. ...``,
``### 3.1 ...``, ``#### 3.1.1 ...``) is keyed by its number; the top-level parts (``# CNN相关问题``) by the
leading Latin word of their title (``CNN``, ``RNN``) or the whole title. A question's answer is its section
with every subsection (``3.1`` includes ``3.1.1``). :data:`SECTIONS` maps our question IDs to section keys;
the sections no question takes are listed with the reason in :data:`UNMAPPED`, and ``tests/test_faq_answers.py``
checks that together they cover the file exactly.

Images of the original (``![](../../../pics/sigmoid.png)``) are not shipped; the text says where one stood.
The gists (:data:`GISTS`) are our English summaries of the Chinese text, one to three sentences, faithful to
what the FAQ says (including where it is vague); sections with a heading but no text say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from types import MappingProxyType

__all__ = ["GISTS", "SECTIONS", "UNMAPPED", "Answer", "Section", "answer", "faq_text", "parse_sections"]

#: Our question ID -> the FAQ section that answers it.
SECTIONS: Mapping[str, str] = MappingProxyType(
    {
        "Q1": "1",
        "Q2": "2",
        "Q3.1": "3.1",
        "Q3.2": "3.2",
        "Q3.3": "3.3",
        "Q4": "4",
        "Q5": "5",
        "Q6": "6",
        "Q7": "7",
        "Q8": "8",
        "Q9": "9",
        "Q10": "10",
        "Q11": "11",
        "Q12": "12",
        "Q13": "13",
        "Q14": "14",
        "Q15": "15",
        "CNN": "CNN",
        "RNN": "RNN",
    }
)

#: FAQ sections that no question takes, and why.
UNMAPPED: Mapping[str, str] = MappingProxyType(
    {
        "基础相关问题": "the title of the fundamentals part; its questions are sections 1-15",
        "3": "the umbrella heading of 3.1-3.3, with no text of its own",
        "3.4": "two links to Chinese blog posts on vanishing gradients, the references of 3.3",
    }
)

#: English gists of the FAQ's answers (our words, from the Chinese text).
GISTS: Mapping[str, str] = MappingProxyType(
    {
        "Q1": "Draw the initial weights at random from a (truncated) Gaussian or a uniform distribution: which of "
        "the two matters little, though this is not well studied. Their scale, however, strongly affects optimization "
        "and generalization; heuristics set it from the numbers of inputs m and outputs n, like Glorot and Bengio's "
        "U(-sqrt(6/(m+n)), sqrt(6/(m+n))), and random orthogonal matrices are another option (Saxe et al. 2013).",
        "Q2": "Without prior knowledge of a real-valued distribution, the normal is the default for two reasons: by "
        "the central limit theorem many real quantities, sums of many independent effects, are close to normal; and "
        "among all distributions with the same variance it has the most uncertainty, so it puts the least prior "
        "knowledge into a model. The answer then gives the univariate and multivariate densities.",
        "Q3.1": "Ill-conditioning means optimization needs more iterations for the same accuracy, because the "
        "condition number (largest over smallest Hessian eigenvalue) is large and the local gradient points poorly "
        "at the optimum. Whatever speeds up training counters it: SGD and mini-batches, learning-rate schedules, "
        "momentum; it also comes from large unnormalized inputs, uneven layer sizes and too-large or too-small "
        "initial weights, which preconditioning transforms away (in the FAQ's figure, 4 iterations become 1).",
        "Q3.2": "For high-dimensional non-convex functions such as neural networks, saddle points are far more common "
        "than local minima or maxima. At a saddle the gradient is zero and the Hessian is indefinite (eigenvalues of "
        "both signs): a maximum along one direction, a minimum along another. Adaptive learning-rate methods "
        "(AdaDelta, Adam) help to avoid them.",
        "Q3.3": "Vanishing and exploding gradients are one phenomenon: back-propagation multiplies one derivative "
        "factor per layer, so factors above 1 make the gradient grow exponentially with depth and factors below 1 "
        "make it shrink, and layers near the input then learn far more slowly than those near the output. Deep "
        "networks and saturating activations such as the sigmoid (derivative sigma(1 - sigma), near 0 when "
        "saturated) cause vanishing, large initial weights explosion, and vanishing is the more common; remedies "
        "are gradient clipping, an L2 penalty, batch normalization, ReLU, and architectures such as ResNet and LSTM.",
        "Q4": "Giving up convexity means giving up finding the optimum: even a network with two layers and three "
        "units is NP-hard to train (Blum & Rivest 1993). It still pays: designers only need the right family of "
        "functions, plain gradient descent efficiently finds good-enough local minima, and the model fits far more "
        "(a maxout unit approximates any convex function to any precision); engineering handles the rest.",
        "Q5": "With mean squared error on sigmoid or softmax outputs the gradient is mostly small, so the weights "
        "update slowly and gradients tend to vanish; with cross-entropy the update is fast when the error is large "
        "and slows down only when the error is small.",
        "Q6": "L1 and L2 penalties make the model prefer smaller weights, that is a simpler model that fits the "
        "training data just enough (Occam's razor) rather than its noise and outliers. The penalty acts as a prior "
        "on the parameters; the lower complexity makes the model more robust and improves generalization.",
        "Q7": "The FAQ has this heading (entropy, KL divergence and cross-entropy) but no answer.",
        "Q8": "Overflow turns a huge number into infinity, underflow a tiny one into zero. Softmax must be "
        "stabilized: it does not change when a constant is added to all inputs, so compute it on x - max_i(x_i); "
        "the largest exponent is then e^0 = 1 (no overflow) and the denominator is at least 1 (no division by "
        "zero). The numerator can still underflow, so log softmax needs the same care.",
        "Q9": "An LSTM avoids the vanishing gradients of a plain RNN, though not exploding ones (handled as in Q3), "
        "and it remembers information over longer spans.",
        "Q10": "Against overfitting in deep networks: dropout, regularization and batch normalization; also data "
        "augmentation, early stopping, and ensembles of models.",
        "Q11": "The FAQ has this heading (the Jacobian, the Hessian and their importance in deep learning) but no "
        "answer.",
        "Q12": "The same answer as Q2: with no prior knowledge the normal is the default, because by the central "
        "limit theorem many real quantities are near-normal and because it has the most uncertainty for a given "
        "variance, adding the least prior knowledge.",
        "Q13": "A 'batch' is the whole training set, a 'mini-batch' a small sample, SGD often a single example. "
        "Larger batches estimate the gradient more accurately, with less than linear returns; smaller ones "
        "generalize better, often best at size 1 (their noise may regularize, Wilson & Martinez 2003), but need a "
        "smaller learning rate and longer training. Memory grows in proportion to the batch size; on some hardware, "
        "GPUs above all, powers of two (32 to 256, 16 for large models) run faster; and too-small batches leave "
        "multi-core hardware idle, hence an absolute minimum batch size.",
        "Q14": "Batch normalization (Ioffe & Szegedy 2015) makes deep networks trainable, mainly against vanishing "
        "gradients: it (1) lessens the dependence on initialization, (2) trains faster and allows higher learning "
        "rates, (3) adds some regularization, so dropout may be dropped. It depends on the batch size: with small "
        "batches the batch mean and variance are unreliable (ResNets on ImageNet degrade from batch 16 to 8), so it "
        "does not suit tiny batches or online learning, nor RNNs, whose time steps would each need statistics.",
        "Q15": "The FAQ has this heading (update rules and activation functions, a supplement) but no answer.",
        "CNN": "The FAQ has this heading (questions on CNNs) but no answer yet.",
        "RNN": "The FAQ has this heading (questions on RNNs) but no answer yet.",
    }
)

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s")
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class Section:
    """One heading of the FAQ: its ``key`` (``"3.1"``, ``"CNN"``), Markdown ``level``, ``title`` and ``body``."""

    key: str
    level: int
    title: str
    body: str


@dataclass(frozen=True)
class Answer:
    """The FAQ's answer to one of our questions: the section ``key``, its Chinese ``title`` and ``text`` (with
    subsections), our English ``gist``, and ``has_text`` (False where the FAQ gives only a heading)."""

    question_id: str
    key: str
    title: str
    text: str
    gist: str
    has_text: bool


def _key(title: str) -> str:
    number = _NUMBER.match(title + " ")
    if number:
        return number.group(1)
    word = re.match(r"[A-Za-z][A-Za-z0-9]*", title)
    return word.group(0) if word else title  # "CNN相关问题" -> "CNN"; "基础相关问题" stays whole


def parse_sections(text: str) -> list[Section]:
    """Split Markdown at its headings (outside fenced code and ``$$`` math blocks), in file order.

    Image links are replaced by ``[figure: <name>, not included]``; bodies are stripped of blank edges.
    Raises ``ValueError`` for a repeated section key (the mapping would be ambiguous).
    """
    sections: list[Section] = []
    current: tuple[str, int, str] | None = None
    lines: list[str] = []
    fenced = False

    def close() -> None:
        if current is not None:
            body = _IMAGE.sub(lambda m: f"[figure: {m.group(1).rsplit('/', 1)[-1]}, not included]", "\n".join(lines))
            sections.append(Section(current[0], current[1], current[2], body.strip()))

    for line in text.splitlines():
        if line.strip().startswith(("```", "$$")):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading:
            close()
            title = heading.group(2)
            current, lines = (_key(title), len(heading.group(1)), title), []
        elif current is not None:
            lines.append(line)
    close()
    keys = [s.key for s in sections]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"FAQ: expected each section number once, got repeated {repeated}. Fix the headings.")
    return sections


@lru_cache(maxsize=1)
def faq_text() -> str:
    """The shipped FAQ file's text."""
    return resources.files("deepbasics").joinpath("faq_data/fundamentals-faq.zh.md").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _sections() -> dict[str, Section]:
    return {s.key: s for s in parse_sections(faq_text())}


def _with_subsections(key: str, sections: Mapping[str, Section]) -> str:
    parts = []
    for s in sections.values():
        if s.key == key:
            parts.append(s.body)
        elif s.key.startswith(key + "."):
            parts.append(f"{'#' * s.level} {s.title}\n\n{s.body}".strip())
    return "\n\n".join(p for p in parts if p)


def answer(question_id: str) -> Answer | None:
    """The FAQ's answer to ``question_id`` (``"Q3.1"``), or ``None`` for a question beyond the FAQ."""
    key = SECTIONS.get(question_id)
    if key is None:
        return None
    sections = _sections()
    section = sections[key]
    text = _with_subsections(key, sections)
    return Answer(question_id, key, section.title, text, GISTS[question_id], bool(text.strip()))
