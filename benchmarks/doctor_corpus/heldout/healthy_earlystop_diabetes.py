"""Regression on the diabetes data with early stopping: Huber loss (nn.SmoothL1Loss), Adam, a validation pass every
epoch, the best weights kept with state_dict() copies and restored with load_state_dict() when patience runs out,
then a lower learning rate and a second phase from the restored weights."""

import argparse
import copy

import torch
import torch.nn as nn
from sklearn.datasets import load_diabetes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_diabetes(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32).unsqueeze(1)
    perm = torch.randperm(len(X))
    tr, va = perm[:350], perm[350:]
    X = (X - X[tr].mean(0)) / X[tr].std(0)
    y = (y - y[tr].mean()) / y[tr].std()

    model = nn.Sequential(nn.Linear(10, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.SmoothL1Loss()
    best, best_state, waited, phase = float("inf"), None, 0, 1
    for epoch in range(args.epochs):
        model.train()
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 32):
            idx = order[i : i + 32]
            optimizer.zero_grad()
            loss = criterion(model(X[idx]), y[idx])
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val = criterion(model(X[va]), y[va]).item()
        print(f"epoch {epoch}: train {loss.item():.4f} val {val:.4f}")
        if val < best - 1e-4:
            best, best_state, waited = val, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
        if waited >= args.patience:
            model.load_state_dict(best_state)
            if phase == 2:
                print(f"stopped at epoch {epoch}, best val {best:.4f}")
                break
            phase, waited = 2, 0
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
            print(f"restored the best weights (val {best:.4f}); learning rate lowered")


if __name__ == "__main__":
    main()
