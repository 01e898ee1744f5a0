"""Wine classifier with Adam. BUG: optimizer.zero_grad() is called between backward() and step(), so every step
sees zero gradients and the weights never change."""

import argparse

import torch
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=60)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_wine(return_X_y=True)
X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
y = torch.tensor(y)

model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.CrossEntropyLoss()

for epoch in range(args.epochs):
    perm = torch.randperm(len(X))
    for i in range(0, len(X), 16):
        idx = perm[i : i + 16]
        loss = loss_fn(model(X[idx]), y[idx])
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
    if epoch % 10 == 0:
        with torch.no_grad():
            full = loss_fn(model(X), y).item()
        print(f"epoch {epoch:3d}  loss {full:.4f}")
