"""LayerStats on a ``torch.compile``d module: the run goes on (its hooks do nothing inside the compiled trace).

Found by the held-out corpus script ``healthy_compiled_wine``: a forward hook traced by dynamo failed at run time
(``'NoneType' object has no attribute 'item'``) inside the user's forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepbasics.doctor import watch


@pytest.mark.slow
def test_watching_a_compiled_model_never_breaks_its_training():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    compiled = torch.compile(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    with watch(compiled, opt, layer_every=1) as session:
        for _ in range(4):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(compiled(x), y)
            loss.backward()
            opt.step()
            session.step(loss)
    assert len(session.trace().losses) == 4 and torch.isfinite(loss)
