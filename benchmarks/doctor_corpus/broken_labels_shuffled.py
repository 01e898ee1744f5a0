"""Digits MLP with a hand-rolled shuffle of the data before training. BUG: the inputs and the labels are shuffled
with two separate calls to np.random.shuffle, so after the shuffle every image carries a random label and the loss
cannot go below chance (log 10 ~ 2.30)."""

# ruff: noqa: NPY002 -- the legacy global-RNG shuffle is the bug this script shows

import argparse

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
np.random.seed(args.seed)
torch.manual_seed(args.seed)

X, y = load_digits(return_X_y=True)
X = X / 16.0
np.random.shuffle(X)
np.random.shuffle(y)
X_train, y_train = torch.tensor(X[:1500], dtype=torch.float32), torch.tensor(y[:1500])
X_val, y_val = torch.tensor(X[1500:], dtype=torch.float32), torch.tensor(y[1500:])

model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
batch_size = 50
for epoch in range(args.epochs):
    for start in range(0, len(X_train), batch_size):
        xb, yb = X_train[start : start + batch_size], y_train[start : start + batch_size]
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        val_acc = (model(X_val).argmax(1) == y_val).float().mean().item()
    print(f"epoch {epoch}: loss {loss.item():.4f}  val acc {val_acc:.3f}")
