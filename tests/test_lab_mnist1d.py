"""The REF.mnist1d experiment: the paper's reference models, its training recipe, and the published-table outputs.

The architectures are checked against the paper's printed parameter counts and layer lengths, the training loop
against the paper's batch schedule, and a short run against the structure the report needs (every cell's ours,
published and gap; the judged maximum). The accuracies themselves are the lab's finding, except for a coarse
check that short training already separates the models the way the table does.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepbasics import data, lab
from deepbasics.lab.experiments import ref_mnist1d_table as ref
from deepbasics.lab.selection import parse_only


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DEEPBASICS_CACHE", str(tmp_path_factory.getbasetemp() / "deepbasics-cache"))


def _tiny(**overrides):
    params = ref.table.params(quick=True)
    params.update(
        {"models": list(ref.MODELS), "steps": dict.fromkeys(ref.MODELS, 12), "eval_every": 5, "inits": 2, **overrides}
    )
    return params


_OUTPUTS: dict[int, dict] = {}


def _tiny_run(seed: int) -> dict:
    if seed not in _OUTPUTS:
        _OUTPUTS[seed] = ref.table.run(_tiny(), seed)
    return _OUTPUTS[seed]


@pytest.mark.parametrize("name", ref.MODELS)
def test_reference_models_have_the_papers_sizes_and_shapes(name):
    model = ref.build(name, 0)
    assert sum(p.numel() for p in model.parameters()) == ref.PAPER_PARAMS[name]
    assert model(torch.randn(7, 40)).shape == (7, 10)


def test_cnn_lengths_and_mlp_residual():
    cnn = ref.build("cnn", 0)
    h = torch.randn(2, 1, 40)
    lengths = []
    for conv in (cnn.conv1, cnn.conv2, cnn.conv3):
        h = conv(h)
        lengths.append(h.shape[-1])
    assert lengths == [19, 10, 5] and cnn.linear.in_features == 125
    mlp = ref.build("mlp", 0)
    x = torch.randn(3, 40)
    h1 = mlp.linear1(x).relu()
    torch.testing.assert_close(mlp(x), mlp.linear3(h1 + mlp.linear2(h1).relu()))


def test_build_is_seeded_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = ref.build("gru", 1), ref.build("gru", 1), ref.build("gru", 2)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


class _Recorder(torch.nn.Module):
    """A linear model that keeps every training batch it sees."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(40, 10)
        self.seen = []

    def forward(self, x):
        if torch.is_grad_enabled():  # training steps; the evaluations run under no_grad
            self.seen.append(x.clone())
        return self.linear(x)


def test_train_takes_batches_in_the_papers_order():
    x, y = torch.randn(250, 40), torch.randint(0, 10, (250,))
    model = _Recorder()
    res = ref.train(model, x, y, x[:20], y[:20], steps=6, lr=0.01, batch_size=100, eval_every=4)
    # step t uses x[b : b + 100] with b = (100 t) mod 250: 0, 100, 200 (50 examples), 50, 150, 0
    starts = [0, 100, 200, 50, 150, 0]
    assert len(model.seen) == 6
    for batch, b in zip(model.seen, starts, strict=True):
        assert torch.equal(batch, x[b : b + 100])
    assert res["curve_steps"] == [4, 6] and len(res["curve"]) == 2 and res["test"] == res["curve"][-1]
    assert 0.0 <= res["train"] <= 100.0 and res["seconds"] > 0


def test_outputs_carry_every_cell_published_next_to_ours():
    out = _tiny_run(0)
    assert out["inits"] == [0, 1]
    gaps, singles = [], []
    for variant in ref.VARIANTS:
        for name in ref.MODELS:
            cell, runs = f"{variant}_{name}", out["per_init"][variant][name]
            assert out[f"{cell}_published"] == ref.PUBLISHED[variant][name]
            assert len(runs) == 2 and all(0.0 <= r <= 100.0 for r in runs)
            assert out[f"{cell}_ours"] == pytest.approx(sum(runs) / 2)  # the mean over the inits
            assert out[f"{cell}_gap"] == pytest.approx(out[f"{cell}_ours"] - out[f"{cell}_published"])
            gaps.append(abs(out[f"{cell}_gap"]))
            singles += [abs(r - out[f"{cell}_published"]) for r in runs]
            assert out["curve_steps"][variant][name] == [5, 10, 12]
            assert [len(c) for c in out["curves"][variant][name]] == [3, 3]
            assert [c[-1] for c in out["curves"][variant][name]] == runs
    assert out["max_abs_gap_points"] == max(gaps) and math.isfinite(out["max_abs_gap_points"])
    assert out["worst_single_run_gap"] == max(singles) >= out["max_abs_gap_points"]
    assert ref.table.run(_tiny(), 1)["inits"] == [2, 3]
    assert {out[f"params_{m}"] for m in ref.MODELS} == {float(n) for n in ref.PAPER_PARAMS.values()}
    assert out["plain_order_holds"] in (0.0, 1.0) and out["shuffled_order_holds"] in (0.0, 1.0)
    assert ref.table.run(_tiny(), 0)["plain_cnn_ours"] == out["plain_cnn_ours"]  # deterministic per seed


def test_subset_of_cells_and_bad_params():
    out = ref.table.run(_tiny(models=["logistic"], variants=["shuffled"]), 0)
    assert [k for k in out if k.endswith("_gap") and k.startswith(("plain", "shuffled"))] == ["shuffled_logistic_gap"]
    assert "plain_order_holds" not in out
    with pytest.raises(ValueError, match="models: expected a non-empty list"):
        ref.table.run(_tiny(models=["resnet"]), 0)
    with pytest.raises(ValueError, match="variants: expected a non-empty list"):
        ref.table.run(_tiny(variants=[]), 0)
    with pytest.raises(ValueError, match="steps: expected a positive int"):
        ref.table.run(_tiny(steps={"logistic": 0, "mlp": 1, "cnn": 1, "gru": 1}), 0)
    with pytest.raises(ValueError, match="inits: expected a positive int"):
        ref.table.run(_tiny(inits=0), 0)


def test_plot_draws_both_figures(tmp_path):
    paths = ref.table.plot([_tiny_run(0)], _tiny(), tmp_path)
    assert [p.name for p in paths] == ["published_vs_ours.png", "test_accuracy_curves.png"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_declared_rule_and_registration():
    rule = ref.table.rules["REF.mnist1d"]
    assert (rule.metric, rule.op, rule.threshold, rule.spread) == ("max_abs_gap_points", "<=", 5.0, "value")
    assert ref.table.seeds == 1 and ref.table.seed_list(5) == (0,)  # the inits are averaged inside one run
    assert ref.TOLERANCE_POINTS == 5.0
    assert "REF.mnist1d" in {cid for exp in lab.experiments() for cid in exp.ids}
    assert parse_only("REF", lab.REGISTRY.claim_ids()) == ["REF.mnist1d"]
    full, quick = ref.table.params(quick=False), ref.table.params(quick=True)
    for params in (full, quick):
        assert (params["lr"], params["batch_size"], params["inits"]) == (0.01, 100, 3)  # the paper's recipe
        assert set(params["variants"]) == set(ref.VARIANTS)
    assert full["models"] == list(ref.MODELS) and set(quick["models"]) < set(ref.MODELS)
    assert all(full["steps"][m] >= quick["steps"][m] for m in quick["models"])


@pytest.mark.slow
def test_short_training_already_separates_the_models_as_the_table_does():
    """After 1000 of the paper's 6000 steps: CNN far above MLP on plain inputs, far below its plain self shuffled."""
    params = ref.table.params(quick=True)
    params.update(steps=dict.fromkeys(ref.MODELS, 1000), models=["mlp", "cnn"], inits=1)
    out = ref.table.run(params, 0)
    assert out["plain_cnn_ours"] > out["plain_mlp_ours"] + SEPARATION
    assert out["shuffled_cnn_ours"] < out["plain_cnn_ours"] - SEPARATION
    assert abs(out["shuffled_mlp_ours"] - out["plain_mlp_ours"]) < SEPARATION  # an MLP has no spatial prior
    assert len(data.mnist1d(val_fraction=0.0).train) == 4000


#: The table's effects are 26 (CNN vs MLP) and 38 (CNN plain vs shuffled) points; half of the smaller one.
SEPARATION = 13.0
