"""Digits classification from 60 training images (6 per class) with a 64 -> 512 -> 512 -> 10 MLP and SGD with
Nesterov momentum, full-batch, 400 steps, checked on 500 other images every 10 steps (eval mode, no_grad). BUG: far
too little data for the model and no regularization: the training loss goes to ~0 while the validation loss, after
its minimum, rises as the network grows confident on what it memorized."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32) / 16.0, torch.tensor(y)
    perm = torch.randperm(len(X))
    tr = torch.cat([perm[y[perm] == k][:6] for k in range(10)])
    rest = perm[~torch.isin(perm, tr)]
    va = rest[:500]
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    loss_fn = nn.CrossEntropyLoss()
    for step in range(args.steps):
        model.train()
        loss = loss_fn(model(X[tr]), y[tr])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0 or step == args.steps - 1:
            model.eval()
            with torch.no_grad():
                val_loss = loss_fn(model(X[va]), y[va]).item()
            print(f"step {step}: train {loss.item():.5f} val loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
