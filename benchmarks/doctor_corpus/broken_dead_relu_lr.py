"""A ReLU MLP on digits trained with plain SGD. BUG: the learning rate (2.0) is far too high: after a few large
updates the hidden units get pre-activations below zero for every input, they die (output 0, gradient 0) and the
network is stuck at the loss of a constant prediction."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.layers(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=2.0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    loader = DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)
    model = MLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            hidden = model.layers[:2](X)
            dead = (hidden <= 0).all(dim=0).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.4f}  first-layer units dead {dead:.0%}")


if __name__ == "__main__":
    main()
