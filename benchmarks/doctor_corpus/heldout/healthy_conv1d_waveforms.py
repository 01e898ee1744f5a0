"""A 1-D CNN classifies noisy waveforms (sine, square, sawtooth, triangle) of random frequency and phase: Conv1d +
BatchNorm1d + ReLU blocks, global average pooling, Adam, a validation pass every epoch in eval mode."""

import argparse
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def waveforms(n, length, generator):
    kind = torch.randint(0, 4, (n,), generator=generator)
    freq = 1.0 + 4.0 * torch.rand(n, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 1, generator=generator)
    t = torch.linspace(0, 1, length)
    angle = 2 * math.pi * freq * t + phase  # (n, L)
    frac = (angle / (2 * math.pi)) % 1.0
    signals = torch.stack(
        [torch.sin(angle), torch.sign(torch.sin(angle)), 2 * frac - 1, 1 - 4 * (frac - 0.5).abs()], 1
    )  # (n, 4, L)
    x = signals[torch.arange(n), kind] + 0.3 * torch.randn(n, length, generator=generator)
    return x.unsqueeze(1), kind  # (n, 1, L)


class WaveNet(nn.Module):
    def __init__(self, channels=16, classes=4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(1, channels, 7, padding=3), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, channels, 5, padding=2, stride=2), nn.BatchNorm1d(channels), nn.ReLU(),
            nn.Conv1d(channels, 2 * channels, 5, padding=2, stride=2), nn.BatchNorm1d(2 * channels), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(2 * channels, classes)

    def forward(self, x):
        return self.head(self.body(x).mean(-1))  # (N, C, L) -> (N, C)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = waveforms(1024, 96, g)
    x_val, y_val = waveforms(512, 96, g)

    model = WaveNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(x_val)
            val_loss = F.cross_entropy(out, y_val).item()
            acc = (out.argmax(1) == y_val).float().mean().item()
        print(f"epoch {epoch}: train loss {loss.item():.4f} val loss {val_loss:.4f} val acc {acc:.3f}")


if __name__ == "__main__":
    main()
