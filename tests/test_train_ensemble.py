"""Tests for deepbasics.train.ensemble.ensemble_predict against hand-computed combinations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepbasics.train import ensemble_predict


class Fixed(nn.Module):
    """Returns fixed logits whatever the input (one row per input row)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float64))

    def forward(self, x):
        return self.logits[: len(x)]


A = [[2.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
B = [[0.0, 3.0, 0.0], [0.0, 0.0, 2.0]]
C = [[1.0, 0.0, 0.0], [5.0, 0.0, 0.0]]


def test_mean_prob_mean_logit_and_vote_match_hand_computation():
    models, x = [Fixed(A), Fixed(B), Fixed(C)], torch.zeros(2, 1)
    z = torch.tensor([A, B, C], dtype=torch.float64)  # (M, N, C)
    p = sum(torch.softmax(z[m], dim=1) for m in range(3)) / 3
    torch.testing.assert_close(ensemble_predict(models, x, "mean_prob"), p, rtol=0, atol=1e-15)
    torch.testing.assert_close(ensemble_predict(models, x, "mean_logit"), z.mean(0), rtol=0, atol=1e-15)
    votes = ensemble_predict(models, x, "vote")
    # row 0: models vote 0, 1, 0; row 1: 2, 2, 0
    torch.testing.assert_close(votes, torch.tensor([[2 / 3, 1 / 3, 0.0], [1 / 3, 0.0, 2 / 3]], dtype=torch.float64))
    assert ensemble_predict(models, x, "mean_prob").sum(1).tolist() == pytest.approx([1.0, 1.0])


def test_mean_prob_and_mean_logit_can_disagree():
    # one confident model against two lukewarm ones: averaging probabilities and logits pick different classes
    models = [Fixed([[10.0, 0.0]]), Fixed([[0.0, 2.0]]), Fixed([[0.0, 2.0]])]
    x = torch.zeros(1, 1)
    assert ensemble_predict(models, x, "mean_logit").argmax(1).item() == 0
    assert ensemble_predict(models, x, "mean_prob").argmax(1).item() == 1
    assert ensemble_predict(models, x, "vote").argmax(1).item() == 1


def test_binary_single_logit_uses_sigmoid():
    models = [Fixed([[2.0], [-1.0]]), Fixed([[-0.5], [-3.0]])]
    x = torch.zeros(2, 1)
    z = torch.tensor([[[2.0], [-1.0]], [[-0.5], [-3.0]]], dtype=torch.float64)
    torch.testing.assert_close(ensemble_predict(models, x, "mean_prob"), torch.sigmoid(z).mean(0))
    torch.testing.assert_close(ensemble_predict(models, x, "vote"), torch.tensor([[0.5], [0.0]], dtype=torch.float64))


def test_models_run_in_eval_mode_and_keep_their_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    model.train()
    a = ensemble_predict([model], x, "mean_logit")
    b = ensemble_predict([model], x, "mean_logit")
    assert torch.equal(a, b) and model.training
    model.eval()
    with torch.no_grad():
        assert torch.equal(a, model(x))
    assert not a.requires_grad


def test_bad_inputs():
    x = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="reduce"):
        ensemble_predict([Fixed(A)], x, "median")
    with pytest.raises(ValueError, match="non-empty"):
        ensemble_predict([], x)
    with pytest.raises(TypeError, match="sequence"):
        ensemble_predict(Fixed(A), x)
    with pytest.raises(ValueError, match="one shape"):
        ensemble_predict([Fixed(A), Fixed([[1.0, 2.0], [3.0, 4.0]])], x)
