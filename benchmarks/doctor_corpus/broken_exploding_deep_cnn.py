"""A plain 10-layer CNN (3x3 convolutions, 32 channels, ReLU, no normalization) on the 8x8 digits. BUG: the
convolutions are initialized with nn.init.normal_(std=0.5) -- a value copied from a tutorial's tiny 1-channel
model -- while He initialization for fan_in 32 * 9 = 288 asks for std sqrt(2 / 288) ~ 0.083: every layer multiplies
the signal (and the gradient on its way back) by ~6, ~6^10 ~ 6e7 over the stack, and the first update overflows."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def make_model(depth=10, channels=32):
    layers = [nn.Conv2d(1, channels, 3, padding=1), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 10)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.5)  # BUG: He would be sqrt(2 / fan_in) ~ 0.083
            nn.init.zeros_(m.bias)
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    y = torch.tensor(digits.target)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(args.steps):
        idx = torch.randint(0, len(x), (32,))
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            print(f"step {step}: loss {loss.item():.4g}")


if __name__ == "__main__":
    main()
