"""Linear regression on the (standardized) diabetes data with mini-batch SGD. BUG: the learning rate 0.3 is above
2 / (largest curvature of the mean squared error), so every step overshoots further: the loss grows geometrically
until it overflows to inf and nan."""

import argparse

import torch
from sklearn.datasets import load_diabetes
from sklearn.preprocessing import StandardScaler

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.3)
args = parser.parse_args()
torch.manual_seed(args.seed)

data = load_diabetes()
X = torch.tensor(StandardScaler().fit_transform(data.data), dtype=torch.float32)
y = torch.tensor((data.target - data.target.mean()) / data.target.std(), dtype=torch.float32).unsqueeze(1)

model = torch.nn.Linear(10, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
loss_fn = torch.nn.MSELoss()

for epoch in range(args.epochs):
    perm = torch.randperm(len(X))
    epoch_loss = 0.0
    for i in range(0, len(X), 32):
        idx = perm[i : i + 32]
        loss = loss_fn(model(X[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(idx)
    print(f"epoch {epoch:2d}  mse {epoch_loss / len(X):.4g}  weight norm {model.weight.norm().item():.3g}")
