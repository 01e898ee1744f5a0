"""Diabetes regression (sklearn's bundled data, targets standardized) with a two-layer Tanh MLP, AdamW and a
StepLR schedule, batches of 32, a held-out quarter evaluated with the same loss every epoch under torch.no_grad()
(the model stays in train mode: it has no dropout or normalization). Healthy: a noisy regression whose validation
loss settles at the noise level."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_diabetes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_diabetes(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)
    perm = torch.randperm(len(X))
    n_val = len(X) // 4
    va, tr = perm[:n_val], perm[n_val:]
    X = (X - X[tr].mean(0)) / X[tr].std(0)
    y = (y - y[tr].mean()) / y[tr].std()
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    loss_fn = nn.HuberLoss()
    for epoch in range(args.epochs):
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            loss = loss_fn(model(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            val_loss = loss_fn(model(X[va]), y[va]).item()
        if epoch % 5 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch}: train {loss.item():.4f} val loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
