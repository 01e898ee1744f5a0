"""A 10-layer sigmoid MLP on digits trained with SGD. BUG: the sigmoid's derivative is at most 1/4, so the gradient
shrinks layer after layer on its way back; the first layers barely learn and the loss stalls near log(10)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class DeepSigmoidNet(nn.Module):
    def __init__(self, depth=10, width=64):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(64 if i == 0 else width, width) for i in range(depth)])
        self.act = nn.Sigmoid()
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        for layer in self.hidden:
            x = self.act(layer(x))
        return self.out(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    ds = TensorDataset(torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target))
    loader = DataLoader(ds, batch_size=32, shuffle=True)

    model = DeepSigmoidNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(args.epochs):
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch}: mean loss {total / len(loader):.4f}")


if __name__ == "__main__":
    main()
