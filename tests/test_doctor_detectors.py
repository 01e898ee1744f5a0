"""Table-driven tests of the doctor's detectors on synthetic recorded traces: each code fires on its trace and
no detector fires on healthy traces (warm-up, learning-rate warm-up, noisy small-batch losses, dropout,
BatchNorm). The robust statistics are checked against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st

from deepbasics.doctor import thresholds as T
from deepbasics.doctor.codes import spec
from deepbasics.doctor.detectors import (
    DETECTORS,
    RunTrace,
    activation_depth,
    bad_init_scale,
    batch_size_advice,
    batchnorm_small_batch,
    dead_relu,
    diverging_loss,
    exploding_gradient,
    ill_conditioned,
    loss_activation_mismatch,
    merge_findings,
    naive_softmax,
    nonfinite,
    oscillating_loss,
    overfitting,
    resolve,
    run_detectors,
    saddle_point,
    saturated_activation,
    slow_convergence,
    static_codes,
    unnormalized_inputs,
    vanishing_gradient,
)
from deepbasics.doctor.detectors._stats import as_series, rolling_median, spearman
from deepbasics.doctor.detectors.static import init_band
from deepbasics.doctor.findings import CODES, Finding, Severity

# ------------------------------------------------------------------------------------------- synthetic traces


def decay(n=200, start=2.3, floor=0.05, tau=40.0, noise=0.0, seed=0):
    """A healthy loss curve: floor + (start - floor) exp(-t / tau), times lognormal minibatch noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    clean = floor + (start - floor) * np.exp(-t / tau)
    return (clean * np.exp(noise * rng.standard_normal(n) - noise**2 / 2)).tolist()


def lr_warmup(n=200, seed=0):
    """Linear lr warm-up over the first 20 steps: the loss barely moves, bumps up once, then falls."""
    rng = np.random.default_rng(seed)
    out, loss = [], 2.3
    for t in range(n):
        lr = min(1.0, (t + 1) / 20)
        loss = max(0.05, loss - 0.04 * lr * loss) + (0.3 if t == 8 else 0.0)
        out.append(loss * math.exp(0.1 * rng.standard_normal()))
    return out


HEALTHY_LOSSES = {
    "clean decay": decay(),
    "small-batch noise (batch 2)": decay(noise=0.6, tau=60),
    "very noisy near a floor": decay(noise=0.9, floor=0.2, tau=20),
    "lr warm-up": lr_warmup(),
    "warm-up spike": [2.3, 2.9, 3.4, 2.6, *decay(197, start=2.2)],
    "already converged": decay(start=0.01, floor=0.0005, noise=0.3),
    "short run": decay(8),
    "dropout-like noise": decay(noise=0.25, floor=0.3),
    "long noisy plateau after the fall": decay(400, floor=0.15, tau=15, noise=0.7, seed=3),
}


def exploding(n=60):
    return [2.3 * 10 ** min(t, 30) if t > 0 else 2.3 for t in range(n)]


def rising(n=200):
    down = decay(100, floor=0.3, tau=15, noise=0.05)
    return down + [0.3 * math.exp(0.035 * t) for t in range(n - 100)]


def oscillating(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [1.6 + 0.9 * (-1) ** t + 0.1 * rng.standard_normal() for t in range(n)]


def slow(n=200):
    return [2.3 - 2e-4 * t for t in range(n)]


LOSS_TABLE = [
    # (name, trace, detector, expected code or None)
    ("explodes to 1e30", exploding(), diverging_loss, "diverging_loss"),
    ("grows then nan", [2.3, 5.0, 40.0, 900.0, math.inf, math.nan], diverging_loss, "diverging_loss"),
    ("falls then rises above the start", rising(), diverging_loss, "diverging_loss"),
    ("bounces without trend", oscillating(), oscillating_loss, "oscillating_loss"),
    ("barely moves", slow(), slow_convergence, "slow_convergence"),
    ("nan at step 7", [*decay(7), math.nan, *decay(20)], nonfinite, "nonfinite"),
]


@pytest.mark.parametrize(("name", "trace", "detector", "code"), LOSS_TABLE, ids=[r[0] for r in LOSS_TABLE])
def test_loss_detector_fires_on_its_trace(name, trace, detector, code):
    found = detector(trace)
    assert [f.code for f in found] == [code]
    assert found[0].severity in (Severity.WARNING, Severity.ERROR)
    assert found[0].explanation and found[0].fix


@pytest.mark.parametrize("name", list(HEALTHY_LOSSES))
@pytest.mark.parametrize("detector", [diverging_loss, oscillating_loss, slow_convergence, nonfinite])
def test_loss_detectors_silent_on_healthy_traces(name, detector):
    assert detector(HEALTHY_LOSSES[name]) == []


def test_loss_detectors_do_not_cross_fire():
    assert oscillating_loss(exploding()) == []  # a diverging run is not called oscillating
    assert diverging_loss(oscillating()) == []
    assert slow_convergence(oscillating()) != []  # alone it would fire; run_detectors resolves it
    trace = RunTrace(losses=list(enumerate(oscillating())))
    assert {f.code for f in run_detectors(trace)} == {"oscillating_loss"}


def test_nonfinite_first_step_and_layer():
    found = nonfinite([1.0, 2.0, math.inf, math.nan])
    assert found[0].step == 2 and found[0].evidence["nonfinite_losses"] == 2
    layers = {"a": {"step": [0, 5], "grad_norm": [1.0, 2.0]}, "b": {"step": [0, 5], "grad_norm": [1.0, math.nan]}}
    found = nonfinite([], layers, ["a", "b"])
    assert [(f.where, f.step) for f in found] == [(("b",), 5)]


def test_slow_convergence_reports_tiny_updates():
    found = slow_convergence(slow(), update_ratio=1e-6)
    assert found[0].evidence["median_update_ratio"] == 1e-6
    assert "only 1e-06" in found[0].explanation


def test_overfitting_prechelt_rule():
    train = decay(300, floor=0.001, tau=30)
    val_u = [(s, 0.5 + 1e-5 * (s - 60) ** 2) for s in range(0, 300, 15)]  # min at 60, up ~ +115% at 300
    found = overfitting(train, val_u)
    assert [f.code for f in found] == ["overfitting"]
    assert found[0].evidence["best_val_step"] == 60
    assert found[0].evidence["generalization_loss_percent"] == pytest.approx(100 * (val_u[-1][1] / 0.5 - 1), rel=0.1)
    val_down = [(s, 2.0 * math.exp(-s / 100) + 0.2) for s in range(0, 300, 15)]
    assert overfitting(train, val_down) == []
    noisy = [(s, 0.5 * (1 + 0.04 * (-1) ** (s // 15))) for s in range(0, 300, 15)]  # +-4%: within GL_5
    assert overfitting(train, noisy) == []
    rng = np.random.default_rng(0)  # wanders by +-30% around 0.45 after its minimum: large but not significant
    wandering = [(0, 2.2), (15, 0.6), (30, 0.36)] + [(s, 0.45 * (1 + 0.3 * rng.standard_normal())) for s in
                                                     range(45, 300, 15)]  # fmt: skip
    assert overfitting(train, wandering) == []
    late = [(s, 2.0 * math.exp(-s / 60) + 0.1) for s in range(0, 270, 15)] + [(270, 0.2), (285, 0.3)]
    assert overfitting(train, late) == []  # a rise in the last points only is not yet sustained
    flat_train = [1.0] * 300  # the training loss does not fall: not the overfitting signature
    assert overfitting(flat_train, val_u) == []


def _val_curve(best_at, after, end_ratio, noise=0.0, seed=0):
    """Validation losses falling to 0.5 at point ``best_at``, then rising linearly to ``end_ratio`` x 0.5 over
    ``after`` more points, with multiplicative noise of relative size ``noise`` after the minimum."""
    rng = np.random.default_rng(seed)
    down = [0.5 * (1 + (best_at - i) / best_at) for i in range(best_at)]
    up = [
        0.5 * (1 + (end_ratio - 1) * k / after) * (1 + noise * abs(rng.standard_normal())) for k in range(1, after + 1)
    ]
    return [(10 * i, v) for i, v in enumerate([*down, 0.5, *up])]


def _plateau_after_rise():
    """The shape of a healthy run under ReduceLROnPlateau: the minimum, a rise of 6% over 5 points, then 32 points
    that creep up by 1e-5 each (rank correlation ~1 since the minimum, but no longer rising)."""
    curve = _val_curve(3, 5, 1.06)
    step, last = curve[-1]
    return curve + [(step + 10 * k, last + 1e-5 * k) for k in range(1, 33)]


@pytest.mark.parametrize(
    ("name", "val", "fires"),
    [
        # measured shapes (thresholds.py): healthy runs end up to +45% over a few points, significantly
        ("healthy: +45% at each of 5 points after the minimum", _val_curve(1, 5, 1.45), False),
        ("healthy: +30% over 27 points, noisy (rho ~0.8)", _val_curve(12, 27, 1.3, noise=0.25), False),
        ("broken, steady: +15% rising at each of 27 points", _val_curve(3, 27, 1.15), True),
        ("broken, large: 3x over 12 points (too few for the steady shape)", _val_curve(2, 12, 3.0, noise=0.05), True),
        ("broken, steady through noise: 3x over 30 points", _val_curve(2, 30, 3.0, noise=0.3), True),
        ("steady but only 10 points: not yet", _val_curve(3, 10, 1.4), False),
        # a schedule cut the learning rate to ~0: +6% over 5 points, then flat (still monotone) for 32 more
        ("healthy: a small rise, then a plateau", _plateau_after_rise(), False),
    ],
)
def test_overfitting_shapes(name, val, fires):
    train = decay(val[-1][0] + 10, floor=0.001, tau=30)
    assert bool(overfitting(train, val)) == fires, name


def test_as_series_accepts_every_form_and_rejects_garbage():
    assert as_series([1.0, 2.0]).steps == [0, 1]
    assert as_series([(5, 1.0), (2, 3.0)]).steps == [2, 5]
    assert as_series({3: 1.0, 1: None}).values == [1.0]
    with pytest.raises(TypeError, match="expected a sequence"):
        as_series(3.0)
    with pytest.raises(TypeError, match="expected numbers"):
        as_series(["a"])


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=60))
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_spearman_matches_scipy(values):
    expected = scipy.stats.spearmanr(np.arange(len(values)), values).statistic
    if np.isnan(expected):
        assert spearman(values) == 0.0
    else:
        assert spearman(values) == pytest.approx(expected, abs=1e-9)


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=40), st.integers(1, 10))
def test_rolling_median_matches_numpy(values, window):
    got = rolling_median(values, window)
    want = [float(np.median(values[i : i + window])) for i in range(len(values) - window + 1)]
    assert got == pytest.approx(want)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=60))
def test_running_median_of_three_is_numpys_exactly(values):
    want = np.median(np.lib.stride_tricks.sliding_window_view(np.asarray(values, dtype=float), 3), axis=1)
    np.testing.assert_array_equal(rolling_median(values, 3), want)


# ---------------------------------------------------------------------------------------- layer traces

KINDS = {"linear1": "matrix", "act1": "relu", "linear2": "matrix", "act2": "bounded", "linear3": "matrix"}
ORDER = list(KINDS)


def layer_records(grads=(1.0, 1.0, 1.0), dead=0.0, sat=0.0, update=1e-3, steps=10, noise=0.1, seed=0):
    """LayerStats-like records with lognormal step-to-step noise around the given medians."""
    rng = np.random.default_rng(seed)

    def jitter(v):
        return [float(v * math.exp(noise * z)) for z in rng.standard_normal(steps)]

    out = {name: {"step": list(range(0, 10 * steps, 10))} for name in ORDER}
    for name, g in zip(["linear1", "linear2", "linear3"], grads, strict=True):
        out[name].update(grad_norm=jitter(g), update_ratio=jitter(update), act_std=jitter(1.0))
    out["act1"].update(dead_frac=[min(1.0, d) for d in jitter(dead)] if dead else [0.0] * steps)
    out["act2"].update(sat_frac=[min(1.0, s) for s in jitter(sat)] if sat else [0.0] * steps)
    return out


LAYER_TABLE = [
    ("deep sigmoid: input side 1e-6 of output", layer_records(grads=(1e-6, 1e-3, 1.0)), "vanishing_gradient"),
    ("input side 300x the output", layer_records(grads=(300.0, 20.0, 1.0)), "exploding_gradient"),
    ("updates larger than the weights", layer_records(update=5.0), "exploding_gradient"),
    ("ReLU layer 95% dead", layer_records(dead=0.95), "dead_relu"),
    ("tanh layer 90% saturated", layer_records(sat=0.9), "saturated_activation"),
]
LAYER_DETECTORS = [vanishing_gradient, exploding_gradient, dead_relu, saturated_activation]
HEALTHY_LAYERS = {
    "balanced": layer_records(),
    "CNN-like first layer 0.17x": layer_records(grads=(0.17, 0.5, 1.0)),
    "input side 1.8x (deep tanh, default init)": layer_records(grads=(1.8, 1.3, 1.0)),
    "some dead units (30%)": layer_records(dead=0.3),
    "some saturation (10%)": layer_records(sat=0.1),
    "BatchNorm/dropout jitter": layer_records(noise=0.5, seed=4),
    "one recorded step": layer_records(steps=1),
}


@pytest.mark.parametrize(("name", "records", "code"), LAYER_TABLE, ids=[r[0] for r in LAYER_TABLE])
def test_layer_detectors_fire_on_their_trace(name, records, code):
    found = [f for d in LAYER_DETECTORS for f in d(records, ORDER, KINDS)]
    assert [f.code for f in found] == [code]
    assert all(w in ORDER for f in found for w in f.where)


@pytest.mark.parametrize("name", list(HEALTHY_LAYERS))
def test_layer_detectors_silent_on_healthy_records(name):
    assert [f for d in LAYER_DETECTORS for f in d(HEALTHY_LAYERS[name], ORDER, KINDS)] == []


@pytest.mark.parametrize("losses", [LOSS_TABLE[3][1], LOSS_TABLE[4][1], rising(), exploding(), decay(noise=0.3)])
@pytest.mark.parametrize("layers", [*(LAYER_TABLE[i][1] for i in (0, 3, 4)), HEALTHY_LAYERS["balanced"]])
def test_a_check_without_transient_detectors_finds_the_same_persistent_findings(losses, layers):
    trace = RunTrace(losses=list(enumerate(losses)), layers=layers, order=list(ORDER), kinds=dict(KINDS))
    full = run_detectors(trace)
    persistent = run_detectors(trace, transient=False)
    assert persistent == [f for f in full if not spec(f.code).transient]
    if losses in (LOSS_TABLE[3][1], LOSS_TABLE[4][1]):  # oscillating, slow: there are transient findings to skip
        assert len(persistent) < len(full)


def test_dead_relu_severity_and_output_activation_skipped():
    assert dead_relu(layer_records(dead=1.0, noise=0.0), ORDER, KINDS)[0].severity is Severity.ERROR
    kinds = {**KINDS, "act2": "bounded"}
    order = [*ORDER[:-1], "act2"]  # the sigmoid is the model's last module: a confident output, not a fault
    order = ["linear1", "act1", "linear2", "linear3", "act2"]
    assert saturated_activation(layer_records(sat=0.99), order, kinds) == []


def test_gradient_growth_over_time_is_exploding():
    records = layer_records(noise=0.0)
    for name in ("linear1", "linear2", "linear3"):
        records[name]["grad_norm"] = [10.0**k for k in range(10)]
    found = exploding_gradient(records, ORDER, KINDS)
    assert found and found[0].evidence["gradient_growth"] > T.GRADIENT_GROWTH


def test_resolve_and_merge():
    sym = Finding("slow_convergence", "warning", ("loss",), {}, "", "")
    cause = Finding("diverging_loss", "error", ("loss",), {}, "", "", step=3)
    assert resolve([sym, cause]) == [cause]
    later = Finding("diverging_loss", "error", ("loss",), {"x": 1}, "", "", step=9)
    merged = merge_findings([cause], [later])
    assert len(merged) == 1 and merged[0].step == 3 and merged[0].evidence == {"x": 1}


# --------------------------------------------------------------------------------------------- curvature


@pytest.mark.parametrize(
    ("report", "fires"),
    [
        ({"lambda_max": 2.5e4, "lambda_min": -40.0}, True),  # raw breast-cancer features (measured)
        ({"lambda_max": 419.0, "lambda_min": 0.01}, True),  # flat bottom at large curvature: kappa >= 1e3
        ({"lambda_max": 43.0, "lambda_min": -0.48}, False),  # healthy CNN after training (measured)
        ({"lambda_max": 0.24, "lambda_min": 3.6e-7}, False),  # softmax symmetry at small curvature
        ({"lambda_max": 50.0, "lambda_min": 0.5}, False),  # positive definite, kappa 100
        ({"lambda_max": 5e4, "lambda_min": 1.0}, True),  # positive definite, kappa 5e4
    ],
)
def test_ill_conditioned_table(report, fires):
    assert bool(ill_conditioned(report)) is fires


def test_saddle_point_table():
    saddle = {"lambda_max": 1e-3, "lambda_min": -1e-3}
    assert saddle_point(saddle, loss=2.3, grad_norm=6e-7, losses=[2.3] * 100)
    assert saddle_point(saddle, loss=2.3, grad_norm=6e-7, at="initialization")[0].evidence["at"] == "initialization"
    assert not saddle_point(saddle, loss=2.3, grad_norm=6e-7, losses=decay(100))  # still making progress
    healthy = {"lambda_max": 1.73, "lambda_min": -0.085}  # digits MLP after 200 steps (measured)
    assert not saddle_point(healthy, loss=0.21, grad_norm=0.19, losses=decay())
    minimum = {"lambda_max": 1.0, "lambda_min": 0.01}
    assert not saddle_point(minimum, loss=0.1, grad_norm=1e-8, losses=[0.1] * 100)


# ------------------------------------------------------------------------------------------------- batch


@pytest.mark.parametrize(("batch", "layers", "fires"), [(2, ["bn"], True), (15, ["bn"], True), (16, ["bn"], False),
                                                        (2, [], False), (None, ["bn"], False)])  # fmt: skip
def test_batchnorm_small_batch(batch, layers, fires):
    assert bool(batchnorm_small_batch(batch, layers)) is fires


@pytest.mark.parametrize(("batch", "b_simple", "fires"), [(2, 400.0, True), (512, 3.0, True), (32, 100.0, False),
                                                          (32, math.inf, False), (32, -5.0, False)])  # fmt: skip
def test_batch_size_advice_is_info(batch, b_simple, fires):
    found = batch_size_advice(batch, b_simple)
    assert bool(found) is fires
    assert all(f.severity is Severity.INFO for f in found)


# ------------------------------------------------------------------------------------------------ static


@pytest.mark.parametrize(
    ("output_op", "loss_ops", "fires"),
    [
        ("aten._softmax.default", ["aten._log_softmax", "aten.nll_loss_forward"], True),  # softmax + CE
        ("aten._softmax", ["aten.nll_loss_forward"], True),  # probabilities into NLLLoss
        ("aten.sigmoid", ["aten.binary_cross_entropy_with_logits"], True),
        ("aten.sigmoid", ["aten.mse_loss"], True),
        ("aten.addmm", ["aten._log_softmax", "aten.nll_loss_forward"], False),  # logits + CE
        ("aten._log_softmax", ["aten.nll_loss_forward"], False),  # log-softmax + NLL
        ("aten.sigmoid", ["aten.binary_cross_entropy"], False),  # sigmoid + BCE
        ("aten.addmm", ["aten.mse_loss"], False),  # regression
    ],
)
def test_loss_activation_mismatch_table(output_op, loss_ops, fires):
    assert bool(loss_activation_mismatch(output_op, loss_ops)) is fires


def test_naive_softmax_sites_and_overflow():
    assert naive_softmax([]) == []
    assert naive_softmax(["head"])[0].severity is Severity.WARNING
    found = naive_softmax([], overflow_op="aten.exp.default", overflow_module="head")
    assert found[0].severity is Severity.ERROR and found[0].where == ("head",)
    assert naive_softmax([], overflow_op="aten.log.default") == []


@pytest.mark.parametrize(
    ("means", "stds", "fires"),
    [
        ([0.0] * 4, [1.0] * 4, False),
        ([0.1, -0.2], [0.9, 1.3], False),
        ([8.0, 3.0], [4.0, 6.0], False),  # raw digit pixels (0..16): borderline but fine
        ([0.0, 0.0], [1.0, 1000.0], True),  # inputs x1000
        ([500.0, 0.0], [1.0, 1.0], True),
        ([0.0] * 3, [3e-3, 1.0, 6e2], True),  # raw breast cancer
        ([0.0, 0.0], [1e-3, 2e-3], True),  # squashed
        ([0.0, 0.0, 0.0], [0.0, 1.0, 1.0], False),  # a constant (blank) pixel is not a scale problem
    ],
)
def test_unnormalized_inputs_table(means, stds, fires):
    assert bool(unnormalized_inputs(means, stds)) is fires


def layer(name, fan_in, fan_out, std, act):
    return {"name": name, "fan_in": fan_in, "fan_out": fan_out, "std": std, "activation": act}


@pytest.mark.parametrize(
    ("layers", "fires"),
    [
        ([layer("l1", 64, 64, 1 / math.sqrt(3 * 64), "relu")], False),  # PyTorch default
        ([layer("l1", 64, 64, math.sqrt(2 / 64), "relu")], False),  # He
        ([layer("l1", 64, 10, math.sqrt(2 / 74), None)], False),  # Glorot
        ([layer("l1", 2, 256, 1 / math.sqrt(6), "tanh")], False),  # default, fan_out >> fan_in
        ([layer("l1", 64, 64, 3.0, "relu")], True),  # N(0, 9)
        ([layer("l1", 64, 64, 4 / math.sqrt(64), "tanh")], True),  # N(0, 16 / fan_in): chaotic tanh
        ([layer("l1", 64, 64, 1e-4, None)], True),  # near-zero
        ([layer("l1", 64, 64, 0.1, "relu"), layer("l2", 64, 10, 0.0, None)], False),  # zero-init head: fine
        ([layer("l1", 64, 64, 0.0, "relu"), layer("l2", 64, 10, 0.0, None)], True),  # symmetric (Q1.f)
    ],
)
def test_bad_init_scale_table(layers, fires):
    assert bool(bad_init_scale(layers)) is fires


def test_init_band_contains_the_schemes():
    low, high = init_band(100, 50, "relu")
    assert low * T.INIT_SCALE_FACTOR == pytest.approx(0.1)  # LeCun
    assert high / T.INIT_SCALE_FACTOR == pytest.approx(math.sqrt(2 / 100))  # He
    low, high = init_band(50, 100, "tanh")
    assert low * T.INIT_SCALE_FACTOR == pytest.approx(math.sqrt(2 / 150))  # Glorot
    assert high / T.INIT_SCALE_FACTOR == pytest.approx(1 / math.sqrt(50))  # LeCun


def test_activation_depth():
    collapsing = [(f"l{i}", 0.4**i) for i in range(8)]
    assert activation_depth(collapsing)[0].code == "bad_init_scale"
    steady = [(f"l{i}", 1.0 + 0.1 * i) for i in range(8)]
    assert activation_depth(steady) == []
    assert activation_depth(collapsing[:2]) == []


def test_every_code_has_a_registered_detector_and_every_detector_declares_table_codes():
    registered = {code for d in DETECTORS for code in d.codes}
    assert registered == set(CODES)
    assert len({d.name for d in DETECTORS}) == len(DETECTORS)
    assert static_codes() <= set(CODES)


def test_run_trace_round_trip_and_unknown_keys():
    trace = RunTrace(losses=[(0, 1.0)], layers=layer_records(), order=ORDER, kinds=KINDS, batch_size=8)
    assert RunTrace.from_dict(trace.to_dict()) == trace
    with pytest.raises(TypeError, match="unknown keys"):
        RunTrace.from_dict({"lossez": []})


def test_ill_conditioned_needs_a_stalled_loss_when_the_losses_are_known():
    # the held-out healthy LSTM's Hessian after training (measured): spread 244, yet the run keeps learning
    report = {"lambda_max": 80.9, "lambda_min": -0.33}
    assert ill_conditioned(report)  # the ratio alone
    assert not ill_conditioned(report, losses=decay(200))  # still learning over its last half
    stalled = ill_conditioned(report, losses=[0.62] * 200)
    assert stalled and stalled[0].evidence["recent_relative_progress"] == 0.0
