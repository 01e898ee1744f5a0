"""A ReLU RNN (nn.RNN(nonlinearity="relu")) sums a noisy sequence of 60 numbers. BUG: the recurrent weights are
initialized orthogonal with gain 1.6 (a "stronger memory"): back-propagation through 60 steps multiplies the gradient
by up to 1.6 per step, the first gradients are astronomically large and the weights blow up."""

import argparse

import torch
import torch.nn as nn


class Summer(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.RNN(1, hidden, nonlinearity="relu", batch_first=True)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=1.6)  # BUG: spectral radius 1.6 over 60 steps
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = Summer()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for step in range(args.steps):
        x = torch.randn(32, 60, 1)
        y = x.sum(1) / 60**0.5
        loss = nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 0:
            print(f"step {step}: loss {loss.item():.4g}")


if __name__ == "__main__":
    main()
