"""Gradient accumulation done right: micro-batches of 16, four backward passes per optimizer step, the loss divided
by the number of accumulation steps so the step equals one on a batch of 64."""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--accum-steps", type=int, default=4)
args = parser.parse_args()
torch.manual_seed(args.seed)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
Y = torch.tensor(digits.target)
perm = torch.randperm(len(Y))
train_idx, val_idx = perm[:1500], perm[1500:]
loader = DataLoader(TensorDataset(X[train_idx], Y[train_idx]), batch_size=16, shuffle=True, drop_last=True)
X_val, Y_val = X[val_idx], Y[val_idx]

model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

for epoch in range(args.epochs):
    optimizer.zero_grad()
    for i, (xb, yb) in enumerate(loader):
        loss = criterion(model(xb), yb) / args.accum_steps
        loss.backward()
        if (i + 1) % args.accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    with torch.no_grad():
        val_loss = criterion(model(X_val), Y_val).item()
        val_acc = (model(X_val).argmax(1) == Y_val).float().mean().item()
    print(f"epoch {epoch}  val loss {val_loss:.4f}  val acc {val_acc:.3f}")
