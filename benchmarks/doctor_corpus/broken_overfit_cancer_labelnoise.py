"""Breast-cancer classification from 80 training examples of which 30% have their label flipped, with a wide
three-layer MLP (30 -> 256 -> 256 -> 2) trained by Adam on mini-batches of 16 for 120 epochs, validated on 200
clean held-out examples every epoch (eval mode, torch.no_grad()). BUG: no regularization, no early stopping, a
model with ~70k parameters for 80 noisy examples: it memorizes the flipped labels, the training loss goes to ~0 and
the validation loss climbs from its minimum in the first epochs."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=120)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_breast_cancer(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(X))
    tr, va = perm[:80], perm[80:280]
    X = (X - X[tr].mean(0)) / X[tr].std(0)
    y_train = y.clone()
    flip = tr[torch.rand(len(tr)) < 0.3]
    y_train[flip] = 1 - y_train[flip]  # label noise in the training set only
    model = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            loss = F.cross_entropy(model(X[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(X[va]), y[va]).item()
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch}: train {loss.item():.4f} val loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
