"""Training building blocks from first principles, each equal to its torch counterpart where one exists.

- normalization: :class:`BatchNorm1d`, :class:`BatchNorm2d` (Ioffe & Szegedy 2015; closed-form backward),
  :class:`LayerNorm` (Ba et al. 2016), :class:`GroupNorm` (Wu & He 2018)
- regularization: :class:`Dropout` (inverted; Srivastava et al. 2014)
- residual blocks: :class:`ResidualBlock`, :class:`ConvResidualBlock` (He et al. 2016)
- recurrent cells, one step each: :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`,
  :class:`LayerNormLSTMCell`; :func:`unroll` loops over time and :func:`gradient_per_step` measures
  ``||dL/dh_t||`` (FAQ Q9.b)
- builders: :func:`mlp`, :func:`small_cnn`, :func:`resnet_mlp`, :func:`rnn_classifier`

Modules take the same constructor arguments and hold the same parameter/buffer names as ``torch.nn``'s, so
``ours.load_state_dict(theirs.state_dict())`` works both ways.
"""

from __future__ import annotations

from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNormFunction, batch_norm
from .builders import RNNClassifier, mlp, resnet_mlp, rnn_classifier, small_cnn
from .dropout import Dropout, dropout
from .layernorm import GroupNorm, LayerNorm, group_norm, layer_norm
from .lnlstm import LayerNormLSTMCell
from .recurrent import GRUCell, LSTMCell, RNNCell
from .residual import ConvResidualBlock, ResidualBlock
from .unroll import Unrolled, gradient_per_step, unroll

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNormFunction",
    "ConvResidualBlock",
    "Dropout",
    "GRUCell",
    "GroupNorm",
    "LSTMCell",
    "LayerNorm",
    "LayerNormLSTMCell",
    "RNNCell",
    "RNNClassifier",
    "ResidualBlock",
    "Unrolled",
    "batch_norm",
    "dropout",
    "gradient_per_step",
    "group_norm",
    "layer_norm",
    "mlp",
    "resnet_mlp",
    "rnn_classifier",
    "small_cnn",
    "unroll",
]
