"""A vanilla tanh nn.RNN must classify 60-step sequences by the sign of their first input; the rest is noise.
BUG: a plain tanh RNN without gating for a 60-step dependency: the gradient from the last step back to the first
shrinks by the recurrent Jacobian at every step and vanishes, so the loss stays at log(2)."""

import argparse

import torch
import torch.nn as nn


class RNNClassifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.rnn = nn.RNN(input_size=1, hidden_size=hidden, nonlinearity="tanh", batch_first=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, x):
        _, h = self.rnn(x)
        return self.fc(h[-1])


def make_batch(n, length, generator):
    x = 0.5 * torch.randn(n, length, 1, generator=generator)
    y = torch.randint(0, 2, (n,), generator=generator)
    x[:, 0, 0] = y.float() * 2 - 1  # the label is written into the first step only
    return x, y


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--length", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    model = RNNClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for step in range(args.steps):
        x, y = make_batch(64, args.length, gen)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0:
            print(f"step {step}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
