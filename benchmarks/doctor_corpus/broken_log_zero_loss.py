"""Binary classification on breast cancer with a hand-written binary cross-entropy on sigmoid outputs. BUG: the loss
takes log(p) and log(1 - p) of probabilities that reach exactly 0.0 or 1.0 in float32 once the model is confident
(|logit| > ~17): log(0) = -inf, and 0 * -inf = nan."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_breast_cancer(return_X_y=True)
X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
y = torch.tensor(y, dtype=torch.float32).unsqueeze(1)

model = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def bce(p, target):
    return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()


for epoch in range(args.epochs):
    perm = torch.randperm(len(X))
    for i in range(0, len(X), 64):
        idx = perm[i : i + 64]
        p = torch.sigmoid(model(X[idx]))
        loss = bce(p, y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if epoch % 10 == 0:
        print(f"epoch {epoch:3d}  loss {loss.item():.5f}")
