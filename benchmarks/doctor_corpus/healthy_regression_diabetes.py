"""Regression on sklearn's diabetes data: standardized features and target, manual mini-batches, SGD + momentum."""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

data = load_diabetes()
X, y = data.data, data.target
idx = rng.permutation(len(X))
train_idx, val_idx = idx[:350], idx[350:]
mean, std = X[train_idx].mean(0), X[train_idx].std(0)
X = (X - mean) / std
y_mean, y_std = y[train_idx].mean(), y[train_idx].std()
y = (y - y_mean) / y_std

X_train = torch.tensor(X[train_idx], dtype=torch.float32)
y_train = torch.tensor(y[train_idx], dtype=torch.float32).unsqueeze(1)
X_val = torch.tensor(X[val_idx], dtype=torch.float32)
y_val = torch.tensor(y[val_idx], dtype=torch.float32).unsqueeze(1)

model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9, weight_decay=1e-2)

n = len(X_train)
for epoch in range(args.epochs):
    perm = torch.randperm(n)
    epoch_loss = 0.0
    for i in range(0, n, args.batch_size):
        batch = perm[i : i + args.batch_size]
        pred = model(X_train[batch])
        loss = F.mse_loss(pred, y_train[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        epoch_loss += loss.item() * len(batch)
    if epoch % 5 == 0 or epoch == args.epochs - 1:
        with torch.no_grad():
            val_loss = F.mse_loss(model(X_val), y_val).item()
        print(f"epoch {epoch:3d} train mse {epoch_loss / n:.4f} val mse {val_loss:.4f}")
