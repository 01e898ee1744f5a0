"""Model builders used across deepbasics (lab experiments, doctor demos, examples), validated and named.

Every builder returns a ``torch.nn.Module`` whose submodules have readable names, so per-layer statistics
(gradient norms, activation saturation, dead units) print as ``linear2`` or ``block3.linear1`` rather than
``4``:

- :func:`mlp`: ``linear1, norm1, act1, dropout1, ..., linear{L}[, final_act]``.
- :func:`small_cnn`: ``conv{i}, norm{i}, act{i}, pool{i}`` per stage, then ``flatten, dropout, fc``.
- :func:`resnet_mlp`: ``stem, block1 .. block{depth}, head`` with :class:`ResidualBlock` blocks.
- :func:`rnn_classifier`: :class:`RNNClassifier`, our cell unrolled by :func:`unroll` plus a linear ``head``.

Normalization layers and cells are ours (:mod:`.batchnorm`, :mod:`.layernorm`, :mod:`.recurrent`);
linear, convolution and pooling layers are torch's.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .._checks import check_choice, check_generator, check_int, check_real, check_tensor, fail
from ._factory import NORMS, ActivationSpec, make_activation, make_norm
from .dropout import Dropout
from .lnlstm import LayerNormLSTMCell
from .recurrent import GRUCell, LSTMCell, RNNCell
from .residual import ResidualBlock
from .unroll import Unrolled, unroll

__all__ = ["CELLS", "INITS", "RNNClassifier", "mlp", "resnet_mlp", "rnn_classifier", "small_cnn"]

INITS = (None, "glorot", "he", "orthogonal")
CELLS: dict[str, type[nn.Module]] = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell, "lnlstm": LayerNormLSTMCell}

InitSpec = str | Callable[[torch.Tensor], object] | None


def _check_dropout(p: object) -> float:
    return check_real(p, "dropout", low=0.0, high=1.0, high_inclusive=False)


def _check_layer_specs(activation: ActivationSpec, norm: str | None, init: InitSpec) -> None:
    """Validate the per-layer options once, up front, with the names the user passed."""
    make_activation(activation)
    check_choice(norm, "norm", NORMS)
    if isinstance(init, str):
        check_choice(init, "init", INITS)
    elif not (init is None or callable(init)):
        raise fail(TypeError, "init", f"one of {list(INITS)} or a callable(weight)", type(init).__name__, "E.g. 'he'.")


def _apply_init(model: nn.Module, init: InitSpec, generator: torch.Generator | None) -> None:
    """Re-initialize every Linear/Conv weight of ``model`` with ``init``; biases to 0 (Glorot & Bengio 2010).

    ``"glorot"``: ``deepbasics.init.glorot_uniform_`` (U(+-sqrt(6 / (fan_in + fan_out))), for tanh/linear
    units); ``"he"``: ``he_normal_`` (N(0, 2 / fan_in), for ReLU); ``"orthogonal"``: ``orthogonal_``
    (Saxe et al. 2014), all with gain 1. A callable receives each weight tensor and fills it in place.
    ``None``: torch's default.
    """
    if init is None:
        return
    if isinstance(init, str):  # validated by _check_layer_specs
        from .. import init as db_init  # lazy: deepbasics.init lives in the same layer and is optional here

        name = {"glorot": "glorot_uniform_", "he": "he_normal_", "orthogonal": "orthogonal_"}[init]
        named = getattr(db_init, name)
        kwargs = {} if generator is None else {"generator": generator}

        def fill(weight: torch.Tensor) -> object:
            return named(weight, **kwargs)

    else:
        fill = init  # type: ignore[assignment]
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fill(module.weight)
                if module.bias is not None:
                    module.bias.zero_()


def mlp(
    sizes: Sequence[int],
    activation: ActivationSpec = "relu",
    norm: str | None = None,
    dropout: float = 0.0,
    init: InitSpec = None,
    bias: bool = True,
    final_activation: ActivationSpec = None,
    *,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] -> sizes[1] -> ... -> sizes[-1]`` as a named ``nn.Sequential``.

    Each hidden layer ``i`` is ``linear{i} -> norm{i} -> act{i} -> dropout{i}`` (normalization before the
    nonlinearity, as Ioffe & Szegedy 2015, section 3.2); the last is ``linear{L}`` then ``final_act`` if
    ``final_activation`` is given. Parameter count: ``sum_i (sizes[i] + bias) * sizes[i+1]`` plus 2 per
    normalized hidden unit.

    Args:
        sizes: at least two positive ints, input size first, output size last.
        activation: hidden nonlinearity: a name ("relu", "tanh", "sigmoid", "gelu", ...), module or factory.
        norm: None, "batch" (:class:`BatchNorm1d`) or "layer" (:class:`LayerNorm`) after each hidden linear.
        dropout: inverted-dropout probability in [0, 1) after each hidden activation (0: no dropout layers).
        init: None (torch's default), "glorot", "he", "orthogonal" (``deepbasics.init``) or a callable filling
            each weight in place; named schemes and callables set biases to 0.
        bias: linear layers with biases.
        final_activation: applied to the output (e.g. "sigmoid"), or None for logits.
        generator: random source for the named ``init`` schemes.
    """
    if isinstance(sizes, str | bytes) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise fail(ValueError, "sizes", "a sequence of at least 2 layer sizes", repr(sizes), "Pass e.g. [64, 32, 10].")
    sizes = [check_int(s, "sizes[i]", low=1) for s in sizes]
    dropout = _check_dropout(dropout)
    check_generator(generator)
    _check_layer_specs(activation, norm, init)  # even when there is no hidden layer to use them
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    n_layers = len(sizes) - 1
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        layers[f"linear{i}"] = nn.Linear(fan_in, fan_out, bias=bias)
        if i == n_layers:
            break
        norm_layer = make_norm(norm, fan_out, spatial=False)
        if norm_layer is not None:
            layers[f"norm{i}"] = norm_layer
        layers[f"act{i}"] = make_activation(activation)
        if dropout > 0:
            layers[f"dropout{i}"] = Dropout(dropout)
    if final_activation is not None:
        layers["final_act"] = make_activation(final_activation, "final_activation")
    model = nn.Sequential(layers)
    _apply_init(model, init, generator)
    return model


def small_cnn(
    in_channels: int = 1,
    num_classes: int = 10,
    channels: Sequence[int] = (16, 32),
    image_size: int = 8,
    norm: str | None = None,
    pool: bool = True,
    dropout: float = 0.0,
    activation: ActivationSpec = "relu",
) -> nn.Sequential:
    """A small convolutional classifier for (N, in_channels, image_size, image_size) images, e.g. 8x8 digits.

    Stage ``i`` (one per entry of ``channels``): ``conv{i}`` 3x3 with padding 1 -> ``norm{i}`` ("batch":
    :class:`BatchNorm2d`, "layer": :class:`GroupNorm` with one group) -> ``act{i}`` -> ``pool{i}`` 2x2 max
    pooling (if ``pool``; halves the side, rounding down). Then ``flatten``, ``dropout`` (if > 0) and ``fc``:
    Linear(channels[-1] * s * s, num_classes) with ``s = image_size // 2**len(channels)`` (or ``image_size``
    without pooling). Returns logits (N, num_classes). For sklearn's digits, reshape X to (N, 1, 8, 8).
    """
    in_channels = check_int(in_channels, "in_channels", low=1)
    num_classes = check_int(num_classes, "num_classes", low=1)
    image_size = check_int(image_size, "image_size", low=1)
    if isinstance(channels, int) or not isinstance(channels, Sequence) or not channels:
        raise fail(ValueError, "channels", "a non-empty sequence of channel counts", repr(channels), "E.g. (16, 32).")
    channels = [check_int(c, "channels[i]", low=1) for c in channels]
    dropout = _check_dropout(dropout)
    _check_layer_specs(activation, norm, None)
    side = image_size // 2 ** len(channels) if pool else image_size
    if side < 1:
        raise fail(
            ValueError,
            "image_size",
            f"at least {2 ** len(channels)} for {len(channels)} pooling stages",
            image_size,
            "Use fewer stages (channels), pool=False, or larger images.",
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    prev = in_channels
    for i, c in enumerate(channels, start=1):
        layers[f"conv{i}"] = nn.Conv2d(prev, c, 3, padding=1, bias=norm is None)  # (N, c, s, s)
        norm_layer = make_norm(norm, c, spatial=True)
        if norm_layer is not None:
            layers[f"norm{i}"] = norm_layer
        layers[f"act{i}"] = make_activation(activation)
        if pool:
            layers[f"pool{i}"] = nn.MaxPool2d(2)  # (N, c, s // 2, s // 2)
        prev = c
    layers["flatten"] = nn.Flatten()  # (N, c * side * side)
    if dropout > 0:
        layers["dropout"] = Dropout(dropout)
    layers["fc"] = nn.Linear(prev * side * side, num_classes)
    return nn.Sequential(layers)


def resnet_mlp(
    depth: int,
    width: int,
    in_features: int,
    out_features: int,
    activation: ActivationSpec = "relu",
    norm: str | None = None,
) -> nn.Sequential:
    """``stem`` Linear(in_features, width) -> ``block1 .. block{depth}`` :class:`ResidualBlock` -> ``head``.

    Each block computes ``x + W_2 act(norm(W_1 x))`` (He et al. 2016), so the input reaches the head through
    an identity path however deep the stack: the residual counterpart of ``mlp([in] + [width] * k + [out])``
    for depth experiments (FAQ Q3.3.i). Parameters: ``(in + 1) w + depth * 2 (w + 1) w + (w + 1) out``
    (+ ``2 w`` per block with a norm).
    """
    depth = check_int(depth, "depth", low=1)
    width = check_int(width, "width", low=1)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    layers["stem"] = nn.Linear(check_int(in_features, "in_features", low=1), width)
    for i in range(1, depth + 1):
        layers[f"block{i}"] = ResidualBlock(width, activation=activation, norm=norm)
    layers["head"] = nn.Linear(width, check_int(out_features, "out_features", low=1))
    return nn.Sequential(layers)


class RNNClassifier(nn.Module):
    """A recurrent cell unrolled over a sequence (:func:`unroll`) and a linear ``head`` on a readout of h_t.

    ``readout="last"``: ``logits = head(h_T)``; ``"mean"``: ``head(mean_t h_t)``. Input (B, T, I) with
    ``batch_first=True`` (default), else (T, B, I). :meth:`forward` returns logits (B, num_classes);
    :meth:`forward_unrolled` also returns the :class:`Unrolled` states for :func:`gradient_per_step`.
    """

    def __init__(self, cell: nn.Module, num_classes: int, readout: str = "last", batch_first: bool = True) -> None:
        super().__init__()
        hidden = getattr(cell, "hidden_size", None)
        if not isinstance(cell, nn.Module) or not isinstance(hidden, int):
            raise fail(TypeError, "cell", "a cell module with hidden_size", type(cell).__name__, "Pass LSTMCell(...).")
        self.cell = cell
        self.readout = check_choice(readout, "readout", ("last", "mean"))
        self.batch_first = bool(batch_first)
        self.head = nn.Linear(hidden, check_int(num_classes, "num_classes", low=1))

    def forward_unrolled(self, x: torch.Tensor, state0: object = None) -> tuple[torch.Tensor, Unrolled]:
        """``(logits (B, num_classes), unrolled states)`` for ``x`` (B, T, I) (or (T, B, I))."""
        check_tensor(x, "x", floating=True, ndim=3)
        states = unroll(self.cell, x, state0, batch_first=self.batch_first)
        features = states.steps[-1] if self.readout == "last" else states.hidden.mean(dim=0)  # (B, H)
        return self.head(features), states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes)."""
        return self.forward_unrolled(x)[0]

    def extra_repr(self) -> str:
        return f"readout={self.readout!r}, batch_first={self.batch_first}"


def rnn_classifier(
    cell: str = "lstm",
    *,
    input_size: int,
    hidden_size: int,
    num_classes: int | None = None,
    output_size: int | None = None,
    readout: str = "last",
    batch_first: bool = True,
) -> RNNClassifier:
    """An :class:`RNNClassifier` with one of our cells: "rnn" (tanh Elman), "lstm", "gru" or "lnlstm".

    ``num_classes`` and ``output_size`` are synonyms (the head's output size; give exactly one). Example:
    ``rnn_classifier("lstm", input_size=8, hidden_size=32, num_classes=10)`` reads sklearn's 8x8 digits as
    sequences of 8 rows of 8 pixels, input (B, 8, 8).
    """
    check_choice(cell, "cell", CELLS)
    if (num_classes is None) == (output_size is None):
        raise fail(
            ValueError,
            "rnn_classifier",
            "exactly one of num_classes and output_size",
            f"num_classes={num_classes}, output_size={output_size}",
            "Pass num_classes=K (they are synonyms).",
        )
    cell_module = CELLS[cell](check_int(input_size, "input_size", low=1), check_int(hidden_size, "hidden_size", low=1))
    out = num_classes if num_classes is not None else output_size
    return RNNClassifier(cell_module, out, readout=readout, batch_first=batch_first)
