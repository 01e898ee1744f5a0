"""An "IRNN" (Le, Jaitly & Hinton 2015: a ReLU RNN with identity-initialized recurrent weights) written as a cell
class and a Python loop over time, predicting the mean of a noisy 50-step sequence. BUG: the recurrent matrix is
initialized to 1.5 x identity instead of the identity ("a bit more memory"): the hidden state, and the gradient
through time, grow ~1.5x per step, 1.5^50 ~ 6e8, and the first update blows the weights up."""

import argparse

import torch
import torch.nn as nn


class Cell(nn.Module):
    def __init__(self, inputs, hidden):
        super().__init__()
        self.inp = nn.Linear(inputs, hidden)
        self.rec = nn.Linear(hidden, hidden, bias=False)
        with torch.no_grad():
            self.rec.weight.copy_(1.5 * torch.eye(hidden))  # BUG: IRNN asks for the identity (gain 1.0)

    def forward(self, x_t, h):
        return torch.relu(self.inp(x_t) + self.rec(h))


class Model(nn.Module):
    def __init__(self, hidden=24):
        super().__init__()
        self.hidden = hidden
        self.cell = Cell(1, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):  # x: (N, T, 1)
        h = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.out(h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = Model()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    loss_fn = nn.MSELoss()
    for step in range(args.steps):
        x = torch.rand(16, 50, 1) + 0.5
        y = x.mean(1)
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            print(f"step {step}: mse {loss.item():.4g}")


if __name__ == "__main__":
    main()
