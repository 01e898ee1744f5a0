"""Which modules LayerStats watches, and the detection of functional activations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import _get_current_function_mode_stack

from deepbasics.probe.hooks import ACTIVATION_TYPES, FunctionalActivationDetector, output_bounds, watched_modules


def test_watched_modules_are_activations_and_parameter_owners():
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(2, 2)), nn.Sigmoid()
    )
    got = {w.name: w.kind for w in watched_modules(model)}
    assert got == {"0": "parametric", "1": "parametric", "2": "activation", "3.1": "parametric", "4": "activation"}
    sig = next(w for w in watched_modules(model) if w.name == "4")
    assert sig.metrics == ("act_mean", "act_std", "zero_frac", "dead_frac", "sat_frac", "preact_large_frac")


def test_root_with_own_parameters_is_named_root():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.s = nn.Parameter(torch.ones(1))

    assert [w.name for w in watched_modules(Scale())] == ["(root)"]


@pytest.mark.parametrize(
    ("module", "bounds"),
    [
        (nn.Sigmoid(), (0.0, 1.0)),
        (nn.Tanh(), (-1.0, 1.0)),
        (nn.Hardtanh(-2.0, 3.0), (-2.0, 3.0)),
        (nn.ReLU6(), (0.0, 6.0)),
        (nn.ReLU(), None),
        (nn.Softmax(dim=-1), None),
    ],
)
def test_output_bounds_match_the_functions_range(module, bounds):
    assert output_bounds(module) == bounds
    if bounds is not None:  # the bounds are the function's actual limits
        y = module(torch.tensor([-1e4, 1e4]))
        assert y[0].item() == pytest.approx(bounds[0], abs=1e-6) and y[1].item() == pytest.approx(bounds[1], abs=1e-6)


def test_every_activation_type_is_a_module_type():
    assert all(isinstance(t, type) and issubclass(t, nn.Module) for t in ACTIVATION_TYPES)


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.gelu = nn.GELU()
        self.inner = nn.Sequential(nn.Linear(3, 3))

    def forward(self, x):
        x = self.gelu(self.fc(x))  # module: covered
        x = F.silu(self.inner(x))  # functional, at the root
        return x.relu() + torch.softmax(x, -1)  # Tensor method: reported; softmax: deliberately not


def test_detector_reports_functional_calls_only():
    model = Mixed()
    x = torch.randn(2, 3)
    expected = model(x)
    det = FunctionalActivationDetector(model)
    det.start()
    try:
        got = model(x)
    finally:
        det.stop()
    assert det.found == ["functional silu in '(root)' (Mixed)", "functional relu in '(root)' (Mixed)"]
    assert torch.equal(got, expected)  # observing does not change the result
    assert not _get_current_function_mode_stack()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    det.stop()  # idempotent


def test_detector_names_the_innermost_custom_module():
    class Swish(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x)

    model = nn.Sequential(nn.Linear(2, 2), Swish())
    det = FunctionalActivationDetector(model)
    det.start()
    model(torch.randn(1, 2))
    det.stop()
    assert det.found == ["functional sigmoid in '1' (Swish)"]
