"""A deep linear network (4 layers, no activations) fits a linear map. BUG: all weights are initialized with std 1e-3;
the origin is a saddle point of a deep linear network, the gradient there is a product of three tiny weight matrices
(~1e-7), and the loss sits on the plateau for the whole budget."""

import argparse

import torch
import torch.nn as nn


class DeepLinear(nn.Module):
    def __init__(self, dim=16, depth=4, init_std=1e-3):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim, bias=False) for _ in range(depth)])
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=init_std)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    teacher = torch.randn(16, 16) / 4
    x = torch.randn(1024, 16)
    y = x @ teacher.T

    model = DeepLinear()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(args.steps):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step:4d}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
