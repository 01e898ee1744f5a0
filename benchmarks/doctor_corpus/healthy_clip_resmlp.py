"""A residual MLP on digits, SGD with momentum, gradients clipped to norm 1 before every step."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class ResidualBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.act = nn.ReLU()

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))


class ResMLP(nn.Module):
    def __init__(self, dim=64, blocks=4):
        super().__init__()
        self.inp = nn.Linear(64, dim)
        self.blocks = nn.Sequential(*[ResidualBlock(dim) for _ in range(blocks)])
        self.out = nn.Linear(dim, 10)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--max-norm", type=float, default=1.0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    loader = DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=32, shuffle=True)

    model = ResMLP()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(args.epochs):
        model.train()
        for step, (xb, yb) in enumerate(loader):
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=args.max_norm)
            optimizer.step()
            if step % 20 == 0:
                print(f"epoch {epoch} step {step:3d} loss {loss.item():.4f} grad norm {grad_norm:.3f}")
        model.eval()
        with torch.no_grad():
            acc = (model(x[1500:]).argmax(1) == y[1500:]).float().mean().item()
        print(f"epoch {epoch}: held-out accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
