"""Polynomial regression: y = a noisy degree-5 polynomial of x in [0, 2] (the sum of the Chebyshev polynomials T_4 and
T_5 of x - 1, an oscillating calibration curve), fitted by a linear model on the features
x, x^2, ..., x^6, each standardized, with full-batch gradient descent. BUG: powers of a positive variable are almost
collinear even after standardization (x^5 and x^6 correlate at > 0.99), so the mean-squared-error Hessian X^T X / n
has a condition number in the millions: a step size stable for its steep direction crawls along the flat ones and the
loss stalls far above the least-squares optimum. (Orthogonal polynomial features, or a preconditioner, fix it.)"""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--steps", type=int, default=400)
args = parser.parse_args()
torch.manual_seed(args.seed)

x = 2 * torch.rand(400, 1)
t = x - 1
y = (16 * t**5 - 20 * t**3 + 5 * t) + (8 * t**4 - 8 * t**2 + 1) + 0.05 * torch.randn(400, 1)  # T_5 + T_4
y = (y - y.mean()) / y.std()
features = torch.cat([x**k for k in range(1, 7)], 1)
features = (features - features.mean(0)) / features.std(0)

model = torch.nn.Linear(6, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = torch.nn.MSELoss()
for step in range(args.steps):
    optimizer.zero_grad()
    loss = loss_fn(model(features), y)
    loss.backward()
    optimizer.step()
    if step % 50 == 0 or step == args.steps - 1:
        print(f"step {step}: mse {loss.item():.5f}")
