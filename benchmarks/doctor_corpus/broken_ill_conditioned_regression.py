"""Linear regression on overlapping measurements (synthetic: several sensors that record nearly the same quantity),
each feature standardized, full-batch gradient descent. BUG: the features are almost collinear, so the curvature
of the squared error along the directions that separate them is ~1e-5 of the largest: gradient descent, whose step
is limited by the largest curvature, makes no visible progress along them and the loss stalls far above the
least-squares optimum."""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=500)
args = parser.parse_args()
torch.manual_seed(args.seed)

n, d = 500, 8
base = torch.randn(n, 1)
sensors = base + 0.003 * torch.randn(n, d)  # d noisy readings of the same signal
X = (sensors - sensors.mean(0)) / sensors.std(0)
# the target depends on the common signal and on the small differences between the sensors (calibration offsets)
offsets = torch.randn(d, 1)
offsets -= offsets.mean()
y = X.mean(1, keepdim=True) + (X - X.mean(1, keepdim=True)) @ offsets * 300 + 0.05 * torch.randn(n, 1)
y = (y - y.mean()) / y.std()

model = torch.nn.Linear(d, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(args.steps):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(X), y)
    loss.backward()
    optimizer.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step:4d}  mse {loss.item():.5f}")
