"""An MLP on the raw breast-cancer features. BUG: the features are not standardized: their scales range from ~1e-3
(smoothness) to ~1e3 (area), so the first layer's pre-activations are dominated by a few huge features and SGD
cannot find a learning rate that suits all directions."""

import argparse

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from torch.utils.data import DataLoader, TensorDataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[idx], y[idx]
    X_train, y_train, X_test, y_test = X[:450], y[:450], X[450:], y[450:]

    train_ds = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train))
    loader = DataLoader(train_ds, batch_size=32, shuffle=True)
    X_test, y_test = torch.tensor(X_test, dtype=torch.float32), torch.tensor(y_test)

    model = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            out = model(X_test)
            acc = (out.argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch:2d} loss {loss.item():.4f} test loss {criterion(out, y_test).item():.4f} acc {acc:.3f}")


if __name__ == "__main__":
    main()
