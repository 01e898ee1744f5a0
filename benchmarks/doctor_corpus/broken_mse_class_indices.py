"""Digit classification trained as regression. BUG: the network has one output and is trained with nn.MSELoss on
the class index (0..9) as a number, as if "7" were closer to "8" than to "1"; rounding its output gives a poor
classifier. A classifier needs 10 logits and a cross-entropy loss."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=15)
args = parser.parse_args()
torch.manual_seed(args.seed)

digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
y = torch.tensor(digits.target, dtype=torch.float32)
perm = torch.randperm(len(y))
train, test = perm[:1400], perm[1400:]
loader = DataLoader(TensorDataset(X[train], y[train]), batch_size=32, shuffle=True)

model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(args.epochs):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb).squeeze(1), yb)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        pred = model(X[test]).squeeze(1).round().clamp(0, 9)
        acc = (pred == y[test]).float().mean().item()
    print(f"epoch {epoch:2d}  mse {loss.item():.3f}  test accuracy (rounded) {acc:.3f}")
