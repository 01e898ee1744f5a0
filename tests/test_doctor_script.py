"""``deepbasics doctor SCRIPT.py`` on unmodified plain-PyTorch scripts (in process, :func:`run_script`): the
practice codes, the output activation named at its module, and overfitting seen through the script's own
evaluation pass; healthy scripts written in the same styles stay quiet."""

from __future__ import annotations

import json
import textwrap

import pytest

from deepbasics.doctor.script import run_script

PRELUDE = """
import torch
from torch import nn
import torch.nn.functional as F
torch.manual_seed(0)
g = torch.Generator().manual_seed(0)
x = torch.randn(512, 10, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
xv = torch.randn(256, 10, generator=g); yv = (xv[:, 0] + xv[:, 1] > 0).long()
"""

HEALTHY = """
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.CrossEntropyLoss()
for epoch in range(6):
    model.train()
    for i in range(0, 512, 32):
        opt.zero_grad()
        loss = criterion(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        val = sum(criterion(model(xv[j:j + 64]), yv[j:j + 64]).item() for j in range(0, 256, 64)) / 4
    print(f"epoch {epoch} val {val:.3f}")
"""

SOFTMAX_CE = """
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2), nn.Softmax(dim=1))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.CrossEntropyLoss()
for epoch in range(3):
    for i in range(0, 512, 32):
        opt.zero_grad()
        loss = criterion(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
"""

EVAL_MODE = """
model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(4):
    for i in range(0, 512, 32):  # model.train() is never called again after the first validation
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        print("val", F.cross_entropy(model(xv), yv).item())
"""

NO_ZERO_GRAD = """
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(2):
    for i in range(0, 512, 32):
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
"""

WRONG_PARAMETERS = """
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
model[2] = nn.Linear(32, 2)  # a new head after the optimizer was built
for epoch in range(2):
    for i in range(0, 512, 32):
        opt.zero_grad()
        loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
"""

OVERFITTING = """
flip = torch.rand(48, generator=g) < 0.3
xs, ys = x[:48, :], (y[:48].bool() ^ flip).long()  # a small training set with noisy labels
model = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
for step in range(300):
    model.train()
    opt.zero_grad()
    loss = F.cross_entropy(model(xs), ys)
    loss.backward()
    opt.step()
    if step % 15 == 14:
        model.eval()
        with torch.no_grad():
            val = sum(F.cross_entropy(model(xv[j:j + 64]), yv[j:j + 64]) * 64 for j in range(0, 256, 64)) / 256
"""


GAN = """
gen = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
disc = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()
real_data = torch.randn(2048, 2, generator=g) * 0.5 + torch.tensor([2.0, -1.0])
for step in range(150):
    real = real_data[(step * 64) % 2048:(step * 64) % 2048 + 64]
    fake = gen(torch.randn(64, 4))
    opt_d.zero_grad()
    d_loss = bce(disc(real), torch.ones(64, 1)) + bce(disc(fake.detach()), torch.zeros(64, 1))
    d_loss.backward()
    opt_d.step()
    opt_g.zero_grad()
    g_loss = bce(disc(fake), torch.ones(64, 1))
    g_loss.backward()
    opt_g.step()
"""


def run(tmp_path, body: str):
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(PRELUDE + body), encoding="utf-8")
    return run_script(path)


def serious(result):
    return {f.code for f in result.findings if f.severity.value != "info"}


def test_a_healthy_script_with_dropout_and_validation_passes_is_quiet(tmp_path):
    result = run(tmp_path, HEALTHY)
    assert result.status == "ok" and serious(result) == set(), [str(f) for f in result.findings]
    session = result.models[0].session
    assert len(session.trace().val_losses) == 6  # one per evaluation pass of 4 batches


def test_a_gan_with_two_models_and_two_optimizers_is_judged_without_practice_findings(tmp_path):
    result = run(tmp_path, GAN)
    assert result.status == "ok" and len(result.models) == 2
    practice = {"missing_zero_grad", "parameters_not_updated", "eval_mode_training"}
    assert not practice & {f.code for f in result.findings}, [str(f) for f in result.findings]
    judged = [m.session.trace().hygiene.judged for m in result.models]
    assert all(j >= 4 for j in judged)  # both models' optimizers were followed


@pytest.mark.parametrize(
    ("body", "code", "where"),
    [
        (SOFTMAX_CE, "loss_activation_mismatch", ("3",)),
        (EVAL_MODE, "eval_mode_training", ("1", "3")),
        (NO_ZERO_GRAD, "missing_zero_grad", ("optimizer (SGD)",)),
        (WRONG_PARAMETERS, "parameters_not_updated", ("2",)),
    ],
    ids=["softmax before CrossEntropyLoss", "trained in eval mode", "no zero_grad", "head replaced"],
)
def test_the_cause_is_named_in_an_unmodified_script(tmp_path, body, code, where):
    result = run(tmp_path, body)
    assert result.status in ("ok", "error_findings")
    found = [f for f in result.findings if f.code == code]
    assert found and found[0].where == where, [str(f) for f in result.findings]


@pytest.mark.slow
def test_overfitting_is_found_through_the_scripts_own_validation_pass(tmp_path):
    result = run(tmp_path, OVERFITTING)
    assert "overfitting" in {f.code for f in result.findings}, [str(f) for f in result.findings]
    data = result.to_dict()
    val = data["models"][0]["trace"]["val_losses"]
    assert len(val) == 20 and json.dumps(data)  # the curve is in doctor.json


FOLDS = """
import torch.nn.modules.module as M
hooks = []
for fold in range(3):  # cross-validation: a new model and optimizer per fold, built after training started
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(5):
        for i in range(0, 512, 32):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 32]), y[i:i + 32]).backward()
            opt.step()
            hooks.append(len(M._global_forward_pre_hooks))
print("HOOKS", hooks)
"""


def test_root_search_hooks_leave_after_the_first_steps_and_later_models_are_still_found(tmp_path, capsys):
    from deepbasics.doctor.script import DISCOVERY_STEPS

    result = run(tmp_path, FOLDS)
    assert result.status == "ok" and len(result.models) == 3  # each fold's model, built mid-run, is watched
    assert [m.session.num_steps for m in result.models] == [80, 80, 80]  # every loss credited to its own model
    hooks = [int(h) for h in capsys.readouterr().out.split("HOOKS [", 1)[1].split("]", 1)[0].split(",")]
    # the global module hooks (PyTorch's slow path for every module call) are gone after the first steps
    assert hooks[:DISCOVERY_STEPS] == [1] * DISCOVERY_STEPS and sum(hooks[DISCOVERY_STEPS:80]) == 0
