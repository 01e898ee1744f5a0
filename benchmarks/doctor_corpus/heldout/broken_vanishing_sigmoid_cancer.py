"""A deep sigmoid MLP (10 hidden layers of 32 units) on the standardized breast-cancer features, SGD. BUG: sigmoid
hidden units with the default initialization: back-propagation multiplies the gradient by sigma'(z) <= 1/4 and a
weight matrix of norm ~1 per layer, so the first layers' gradients are orders of magnitude smaller than the last
ones' and the network barely learns."""

import argparse

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[idx], y[idx]
    X = (X - X[:450].mean(0)) / X[:450].std(0)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)

    layers = [nn.Linear(30, 32), nn.Sigmoid()]
    for _ in range(9):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(args.epochs):
        perm = torch.randperm(450)
        for i in range(0, 450, 32):
            b = perm[i : i + 32]
            loss = nn.functional.cross_entropy(model(X[b]), y[b])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            acc = (model(X[450:]).argmax(1) == y[450:]).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.4f} test acc {acc:.3f}")


if __name__ == "__main__":
    main()
