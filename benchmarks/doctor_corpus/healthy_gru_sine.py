"""A GRU forecasts the next value of noisy sums of two sine waves from a window of the previous 30 values."""

import argparse
import math

import numpy as np
import torch
import torch.nn as nn


class Forecaster(nn.Module):
    def __init__(self, hidden_size=32):
        super().__init__()
        self.gru = nn.GRU(1, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, 1)

    def forward(self, x):
        output, _ = self.gru(x)  # (batch, time, hidden)
        return self.out(output[:, -1])


def make_series(rng, n_series, length):
    t = np.arange(length)
    freq = rng.uniform(0.05, 0.15, size=(n_series, 2))
    phase = rng.uniform(0, 2 * math.pi, size=(n_series, 2))
    series = np.sin(freq[:, :1] * t + phase[:, :1]) + 0.5 * np.sin(freq[:, 1:] * t + phase[:, 1:])
    return series + 0.05 * rng.standard_normal(series.shape)


def windows(series, width):
    xs, ys = [], []
    for start in range(0, series.shape[1] - width - 1, 7):
        xs.append(series[:, start : start + width])
        ys.append(series[:, start + width])
    x = np.concatenate(xs)[..., None]
    y = np.concatenate(ys)[:, None]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x_train, y_train = windows(make_series(rng, 64, 200), 30)
    x_val, y_val = windows(make_series(rng, 16, 200), 30)
    print(f"{len(x_train)} training windows, {len(x_val)} validation windows")

    model = Forecaster()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    criterion = nn.MSELoss()
    for step in range(args.steps):
        idx = torch.randint(0, len(x_train), (64,))
        loss = criterion(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            with torch.no_grad():
                val = criterion(model(x_val), y_val).item()
            print(f"step {step:4d}  train {loss.item():.4f}  val {val:.4f}")


if __name__ == "__main__":
    main()
