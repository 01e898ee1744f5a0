"""Nonlinear regression on Friedman's synthetic function (Friedman 1991) with Adam and ReduceLROnPlateau driven by the
validation loss."""

import argparse

import numpy as np
import torch
import torch.nn as nn


def friedman(n, rng, noise=0.5):
    x = rng.uniform(0, 1, size=(n, 10))
    y = 10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2 + 10 * x[:, 3] + 5 * x[:, 4]
    return x, y + noise * rng.standard_normal(n)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_train, y_train = friedman(2000, rng)
    x_val, y_val = friedman(500, rng)
    mu, sd = x_train.mean(0), x_train.std(0)
    y_mu, y_sd = y_train.mean(), y_train.std()

    def to_tensors(x, y):
        return (
            torch.tensor((x - mu) / sd, dtype=torch.float32),
            torch.tensor((y - y_mu) / y_sd, dtype=torch.float32).view(-1, 1),
        )

    x_train, y_train = to_tensors(x_train, y_train)
    x_val, y_val = to_tensors(x_val, y_val)

    model = nn.Sequential(nn.Linear(10, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=3)
    criterion = nn.MSELoss()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            optimizer.zero_grad()
            loss = criterion(model(x_train[b]), y_train[b])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_loss = criterion(model(x_val), y_val).item()
        scheduler.step(val_loss)
        print(
            f"epoch {epoch:2d}  train {loss.item():.4f}  val {val_loss:.4f}  lr {optimizer.param_groups[0]['lr']:.1e}"
        )


if __name__ == "__main__":
    main()
