"""Iris classifier with an EMA copy of the weights. BUG: the optimizer is built on the EMA copy's parameters
(ema.parameters() instead of model.parameters()); the EMA copy never receives gradients, so the optimizer steps
nothing, and the trained model's gradients are never applied: its weights never change."""

import argparse
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_iris


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_iris(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    X = (X - X.mean(0)) / X.std(0)

    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))
    ema = copy.deepcopy(model)
    optimizer = torch.optim.SGD(ema.parameters(), lr=0.05, momentum=0.9)  # BUG: model.parameters()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 16):
            idx = perm[i : i + 16]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 0.1)
        if epoch % 10 == 9:
            with torch.no_grad():
                acc = (ema(X).argmax(1) == y).float().mean().item()
            print(f"epoch {epoch}: loss {loss.item():.4f} ema acc {acc:.3f}")


if __name__ == "__main__":
    main()
