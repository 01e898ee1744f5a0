"""Wine classification with a small MLP: SGD with momentum and weight decay, a DataLoader of mini-batches of 16, and
a validation pass every epoch in eval mode under torch.inference_mode(), averaged over the validation batches.
Healthy: the validation loss falls and then stays near its minimum."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_wine
from torch.utils.data import DataLoader, TensorDataset


def evaluate(model, loader, loss_fn):
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for xb, yb in loader:
            total += loss_fn(model(xb), yb).item() * len(xb)
            count += len(xb)
    return total / count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_wine(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(X))
    tr, va = perm[:130], perm[130:]
    mean, std = X[tr].mean(0), X[tr].std(0)
    X = (X - mean) / std
    train = DataLoader(TensorDataset(X[tr], y[tr]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(X[va], y[va]), batch_size=64)
    model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in train:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        val_loss = evaluate(model, val, loss_fn)
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch}: train {loss.item():.4f} val loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
