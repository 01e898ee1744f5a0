"""A two-layer GRU (dropout 0.3 between layers, dropout before the head) forecasts the next value of noisy sine
mixtures. BUG: the validation helper called every 25 steps puts the model in eval mode and the loop never switches it
back, so every step after the first validation trains with dropout switched off."""

import argparse
import math

import torch
import torch.nn as nn


def sines(n, length, generator):
    freq = 0.5 + torch.rand(n, 2, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(n, 2, 1, generator=generator)
    t = torch.arange(length + 1) * 0.2
    s = torch.sin(freq * t + phase).sum(1) + 0.1 * torch.randn(n, length + 1, generator=generator)  # (n, L + 1)
    return s[:, :-1, None], s[:, 1:, None]


class Forecaster(nn.Module):
    def __init__(self, hidden=48):
        super().__init__()
        self.gru = nn.GRU(1, hidden, num_layers=2, dropout=0.3, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(self.drop(out))


def validate(model, x, y):
    model.eval()  # BUG: nothing sets model.train() again
    with torch.no_grad():
        return nn.functional.mse_loss(model(x), y).item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x_val, y_val = sines(128, 40, g)
    model = Forecaster()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(args.steps):
        x, y = sines(32, 40, g)
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 24:
            print(f"step {step}: loss {loss.item():.4f} val {validate(model, x_val, y_val):.4f}")


if __name__ == "__main__":
    main()
