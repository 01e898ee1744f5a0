"""The fix catalogue: small, composable changes to a training setup, each aimed at some finding codes.

A :class:`Fix` maps a :class:`~deepbasics.doctor.zoo.Case` (model, loss, data, optimizer factory, batch size,
budget) to a changed case; ``repair`` applies it to a deep copy, retrains for the same budget and keeps it
only if its finding is gone and the validation metric improved. ``fix_a.then(fix_b)`` composes two fixes.
A fix that has nothing to change on a given case raises :class:`NotApplicable` (and is skipped).

The catalogue, with the reasoning each fix follows:

======================  ======================================================================================
fix                     change (reference)
======================  ======================================================================================
``he_init``             W ~ N(0, 2 / fan_in), b = 0 (He et al. 2015, sec. 2.2); residual branches' last layers
                        scaled by L^-1/2 for L blocks (Fixup, Zhang et al. 2019, sec. 3)
``glorot_init``         W ~ U(+-sqrt(6 / (fan_in + fan_out))), b = 0 (Glorot & Bengio 2010, eq. 16)
``swap_to_relu``        hidden sigmoid/tanh -> ReLU, then He init (Glorot et al. 2011; FAQ Q3.3)
``leaky_relu``          ReLU -> LeakyReLU(0.01) and He init: dead units still get gradient (Maas et al. 2013)
``insert_batchnorm``    BatchNorm after each hidden linear/conv layer (Ioffe & Szegedy 2015, sec. 3.2)
``insert_layernorm``    LayerNorm / GroupNorm(1) there instead (Ba et al. 2016; Wu & He 2018)
``batchnorm_to_layer``  BatchNorm -> LayerNorm (GroupNorm(1, C) for images): batch-independent (FAQ Q14)
``clip_gradients``      rescale g <- g min(1, c / ||g||), c = 1 (Pascanu et al. 2013, alg. 1)
``lr_down`` / ``lr_up`` learning rate x 0.1 / x 10 (FAQ Q3.1, Q11)
``lr_halve``            learning rate x 0.5: just below the stability edge eta < 2 / lambda_max (FAQ Q3.1)
``adam``                Adam(lr=1e-3) (Kingma & Ba 2015): per-parameter step sizes
``standardize_inputs``  x <- (x - mu_train) / sigma_train (LeCun et al. 1998, sec. 4.3)
``stable_softmax``      naive log(exp(z) / sum exp(z)) -> nn.LogSoftmax (max subtracted first; FAQ Q8)
``fix_output``          drop a softmax before CrossEntropyLoss; sigmoid + MSE/BCE -> BCEWithLogitsLoss (FAQ Q5)
``larger_batch``        batch x 16 (at least 32), lr x sqrt(16) (Hoffer et al. 2017; McCandlish et al. 2018)
``weight_decay``        L2 penalty 1e-2 through the optimizer's weight_decay (Krogh & Hertz 1992; FAQ Q10)
``dropout``             Dropout(0.5) after each hidden activation (Srivastava et al. 2014)
``early_stopping``      stop at the best validation step of the first run (Prechelt 1998; FAQ Q10)
======================  ======================================================================================

:data:`CANDIDATES` orders the fixes tried for each finding code, most specific first; it is the code table's
``candidates`` column, and a fix's ``applies_to`` includes every code whose row names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ..._checks import fail
from ..case import Case
from ..codes import TABLE
from ..findings import CODES
from .base import Fix, NotApplicable
from .catalogue import FIXES
from .surgery import clipped, uses_relu

__all__ = ["CANDIDATES", "FIXES", "Fix", "NotApplicable", "candidates_for", "clipped", "get_fix", "iter_fixes"]


#: For each code, the fixes tried in order (most specific first), read from the code table
#: (:data:`deepbasics.doctor.codes.TABLE`, column ``candidates``). "he_or_glorot" picks by the activations.
CANDIDATES: Mapping[str, tuple[str, ...]] = MappingProxyType({row.code: row.candidates for row in TABLE})


def get_fix(name: str) -> Fix:
    """The catalogue entry ``name`` (``ValueError`` listing the names if unknown)."""
    if name not in FIXES:
        raise fail(ValueError, "fix", f"one of {sorted(FIXES)}", repr(name), "Pick a fix from the catalogue.")
    return FIXES[name]


def candidates_for(code: str, case: Case) -> list[Fix]:
    """The fixes to try for ``code`` on ``case``, in order; ``he_or_glorot`` resolves to He for ReLU-like nets."""
    if code not in CANDIDATES:
        raise fail(ValueError, "code", f"one of {list(CODES)}", repr(code), "Use a finding code.")
    out: list[Fix] = []
    for name in CANDIDATES[code]:
        if name == "he_or_glorot":
            name = "he_init" if uses_relu(case.model) else "glorot_init"
        fix = FIXES[name]
        if fix not in out:
            out.append(fix)
    return out


def iter_fixes(names: Iterable[str]) -> list[Fix]:
    """Catalogue entries for ``names`` (each checked)."""
    return [get_fix(n) for n in names]
