"""A 32-block residual MLP without normalization classifies the digits. BUG: the residual branches are
initialized with nn.init.normal_(std=0.1) on width 256, a gain of ~1.6 per linear layer, and the branches are added
unscaled (no 1/sqrt(depth) factor, no zero-init of the last layer of each branch, no normalization): every block
roughly doubles the signal, and its gradient, so 32 blocks give ~2^32. The first step overflows."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.1)  # BUG: ~1.6x He's std for width 256, on both layers
            nn.init.zeros_(fc.bias)

    def forward(self, x):
        return x + self.fc2(torch.relu(self.fc1(x)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--blocks", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    model = nn.Sequential(nn.Linear(64, 256), *[Block(256) for _ in range(args.blocks)], nn.Linear(256, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4g}")


if __name__ == "__main__":
    main()
