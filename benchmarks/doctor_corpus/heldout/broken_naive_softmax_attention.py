"""Attention pooling over the 8 rows of each digit image with a hand-written attention module and a sharp
temperature (0.005, "near-hard attention"). BUG: the module computes the attention weights as exp(s) / sum(exp(s))
without subtracting max(s). Training sharpens the scores; once one passes ~44, sum(exp(s))^2 overflows float32 in the
backward pass of the division (d(e / S)/dS = -e / S^2), the weights turn nan, and from then on (above ~88.7 exp itself
overflows) the loss is nan -- where torch.softmax on the same scores is finite in both passes."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits


class SharpAttentionPool(nn.Module):
    def __init__(self, dim, temperature=0.005):
        super().__init__()
        self.query = nn.Parameter(torch.randn(dim))
        self.key = nn.Linear(dim, dim)
        self.temperature = temperature

    def forward(self, h):  # h: (N, T, D)
        scores = self.key(h) @ self.query / self.temperature  # (N, T)
        weights = torch.exp(scores) / torch.exp(scores).sum(dim=1, keepdim=True)  # BUG: no max subtracted
        return (weights.unsqueeze(-1) * h).sum(1)  # (N, D)


class RowReader(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(8, dim), nn.ReLU())
        self.pool = SharpAttentionPool(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, images):  # (N, 8, 8): 8 rows of 8 pixels
        return self.head(self.pool(self.embed(images)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    model = RowReader()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i : i + 32]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
