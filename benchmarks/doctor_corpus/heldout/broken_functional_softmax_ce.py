"""A 1-D CNN classifies noisy waveforms (sine, square, sawtooth, triangle). BUG: forward() returns
F.softmax(logits, dim=1) (meant for inference) and training uses nn.CrossEntropyLoss, which applies log-softmax
again: the loss sees probabilities as logits, its gradients are squashed, and it cannot go below log(1 + 3/e) = 0.74."""

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
    angle = 2 * math.pi * freq * t + phase
    frac = (angle / (2 * math.pi)) % 1.0
    signals = torch.stack([torch.sin(angle), torch.sign(torch.sin(angle)), 2 * frac - 1, 1 - 4 * (frac - 0.5).abs()], 1)
    x = signals[torch.arange(n), kind] + 0.3 * torch.randn(n, length, generator=generator)
    return x.unsqueeze(1), kind


class WaveNet(nn.Module):
    def __init__(self, channels=16):
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 7, padding=3)
        self.conv2 = nn.Conv1d(channels, 2 * channels, 5, padding=2, stride=2)
        self.fc = nn.Linear(2 * channels, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x)).mean(-1)  # (N, 2C)
        return F.softmax(self.fc(x), dim=1)  # BUG: CrossEntropyLoss expects logits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_train, y_train = waveforms(2048, 96, g)
    model = WaveNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x_train))
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            loss = criterion(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
