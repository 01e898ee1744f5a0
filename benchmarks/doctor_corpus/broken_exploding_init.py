"""A 10-layer ReLU MLP on digits. BUG: the weights are initialized from N(0, 0.35^2) whatever the layer width; He
initialization would use std sqrt(2 / 64) ~ 0.18, so every layer doubles the signal (and the backward gradient):
the first gradients are ~2^9 too large and the run blows up within a few steps."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--depth", type=int, default=10)
args = parser.parse_args()
torch.manual_seed(args.seed)

layers = [nn.Linear(64, 64), nn.ReLU()]
for _ in range(args.depth - 2):
    layers += [nn.Linear(64, 64), nn.ReLU()]
layers.append(nn.Linear(64, 10))
model = nn.Sequential(*layers)
for m in model.modules():
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.35)
        nn.init.zeros_(m.bias)

digits = load_digits()
x_all = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y_all = torch.tensor(digits.target)

optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()
for step in range(args.steps):
    idx = torch.randint(0, len(x_all), (64,))
    loss = loss_fn(model(x_all[idx]), y_all[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 25 == 0 or step < 10:
        print(f"step {step:4d}  loss {loss.item():.4g}")
