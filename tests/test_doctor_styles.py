"""Every ordinary training style works under the doctor and is judged fairly (issue 14, item 4).

Each style runs twice -- under :func:`deepbasics.doctor.watch` or ``run_script`` and without -- where the doctor could
disturb it; the tests check that nothing raises, that the results are bit-identical where that is promised, that the
losses go to the model they train, and that a healthy run of the style gets no warning or error finding.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from torch import nn

from deepbasics.doctor import watch
from deepbasics.doctor.script import run_script


def serious(findings):
    return {f.code for f in findings if f.severity.value != "info"}


def run(tmp_path, body: str, name: str = "train.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return run_script(path)


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    return x, (x[:, 0] - x[:, 1] > 0).long()


# ------------------------------------------------------------------------------------------------ frozen layers
def _finetune(session_factory, freeze_after: int):
    """Train a small net; after ``freeze_after`` steps freeze its first layer and replace its head."""
    torch.manual_seed(0)
    x, y = _data()
    model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with session_factory(model) as session:
        for step in range(60):
            if step == freeze_after:
                model[0].requires_grad_(False)
                model[2] = nn.Linear(16, 2)
                opt = torch.optim.SGD(model[2].parameters(), lr=0.1)
            i = (step * 32) % 256
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[i : i + 32]), y[i : i + 32])
            loss.backward()
            opt.step()
            if session is not None:
                session.step(loss)
    return model, session


class _Plain:
    def __init__(self, model):
        pass

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


@pytest.mark.parametrize("layer_every", [1, 20])
def test_freezing_layers_after_the_doctor_attached_neither_raises_nor_changes_training(layer_every):
    plain, _ = _finetune(_Plain, freeze_after=25)
    watched, session = _finetune(lambda m: watch(m, layer_every=layer_every), freeze_after=25)
    for a, b in zip(plain.parameters(), watched.parameters(), strict=True):
        assert torch.equal(a, b)
    assert serious(session.findings) == set(), [str(f) for f in session.findings]
    assert session.stats.failed is None


FINETUNE_SCRIPT = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(256, 10); y = (x[:, 0] - x[:, 1] > 0).long()
model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(6):
    if epoch == 3:  # fine-tune: freeze the backbone, new head, new optimizer on the head only
        for p in model[0].parameters():
            p.requires_grad = False
        model[2] = nn.Linear(16, 2)
        opt = torch.optim.Adam(model[2].parameters(), lr=1e-2)
    for i in range(0, 256, 32):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
"""


def test_a_script_that_freezes_its_backbone_after_the_doctor_attached_runs_and_is_quiet(tmp_path):
    result = run(tmp_path, FINETUNE_SCRIPT)
    assert result.status == "ok", result.error
    assert serious(result.findings) == set(), [str(f) for f in result.findings]


# ------------------------------------------------------------------------------------------------ two models
GAN_SCRIPT = """
import torch
from torch import nn
torch.manual_seed(0)
real_data = torch.randn(4096, 2) * 0.5 + torch.tensor([2.0, -1.0])
gen = nn.Sequential(nn.Linear(4, 32), nn.LeakyReLU(0.2), nn.Linear(32, 2))
disc = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()
D_LOSSES, G_LOSSES = [], []
for step in range(400):
    real = real_data[(step * 64) % 4096:(step * 64) % 4096 + 64]
    fake = gen(torch.randn(64, 4))
    d_loss = bce(disc(real), torch.ones(64, 1)) + bce(disc(fake.detach()), torch.zeros(64, 1))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = bce(disc(fake), torch.ones(64, 1))  # computed by the discriminator, trains the generator
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    D_LOSSES.append(d_loss.item()); G_LOSSES.append(g_loss.item())
import json, pathlib
pathlib.Path("losses.json").write_text(json.dumps({"d": D_LOSSES, "g": G_LOSSES}))
"""


def test_a_gan_credits_each_loss_to_the_model_it_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(tmp_path, GAN_SCRIPT)
    assert result.status == "ok", result.error
    import json

    truth = json.loads((tmp_path / "losses.json").read_text())
    by_name = {m.name: [v for _, v in m.session.trace().losses] for m in result.models}
    assert by_name["Sequential"] == pytest.approx(truth["g"], rel=1e-6)  # the generator: created and run first
    assert by_name["Sequential#2"] == pytest.approx(truth["d"], rel=1e-6)
    assert all(m.session.trace().adversarial for m in result.models)
    assert serious(result.findings) == set(), [str(f) for f in result.findings]


DISTILL_SCRIPT = """
import torch
from torch import nn
torch.manual_seed(0)
x = torch.randn(512, 10); y = (x[:, 0] * x[:, 1] > 0).long()
teacher = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 2))
opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
for step in range(150):
    i = (step * 64) % 512
    opt.zero_grad()
    loss = nn.functional.cross_entropy(teacher(x[i:i + 64]), y[i:i + 64])
    loss.backward()
    opt.step()
teacher.eval()
student = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))
opt_s = torch.optim.Adam(student.parameters(), lr=1e-2)
for step in range(150):
    i = (step * 64) % 512
    with torch.no_grad():
        soft = teacher(x[i:i + 64]).softmax(1)
    opt_s.zero_grad()
    loss = nn.functional.cross_entropy(student(x[i:i + 64]), soft)
    loss.backward()
    opt_s.step()
"""


def test_distillation_is_not_mistaken_for_a_game(tmp_path):
    result = run(tmp_path, DISTILL_SCRIPT)
    assert result.status == "ok" and len(result.models) == 2
    assert [m.session.num_steps for m in result.models] == [150, 150]
    assert not any(m.session.trace().adversarial for m in result.models)
    assert serious(result.findings) == set(), [str(f) for f in result.findings]
