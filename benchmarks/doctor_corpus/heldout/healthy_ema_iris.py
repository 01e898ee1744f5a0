"""Iris classifier with an exponential moving average (EMA) of its weights: the model is trained with SGD and
momentum, a copy holds the EMA (updated in place under no_grad after every step, never trained), and evaluation uses
the EMA copy."""

import argparse
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_iris


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_iris(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    X = (X - X.mean(0)) / X.std(0)
    perm = torch.randperm(len(X))
    tr, va = perm[:110], perm[110:]

    model = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 3))
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(args.epochs):
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters(), strict=True):
                    e.lerp_(p, 0.1)
        if epoch % 10 == 9:
            with torch.no_grad():
                out = ema(X[va])
            acc = (out.argmax(1) == y[va]).float().mean().item()
            val = F.cross_entropy(out, y[va]).item()
            print(f"epoch {epoch}: loss {loss.item():.4f} ema val loss {val:.4f} acc {acc:.3f}")


if __name__ == "__main__":
    main()
