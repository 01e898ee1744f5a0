"""A 3-hidden-layer tanh MLP on digits with hand-made parameters. BUG: the weights are drawn with torch.randn
(std 1), ~10x Glorot's std for 128 inputs: the pre-activations have std ~10, most tanh units sit at +-1 where their
derivative is ~0, the hidden layers hardly learn, and the saturated features generalize poorly (the network is in
the chaotic regime of Poole et al. 2016: nearby inputs get unrelated codes)."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
torch.manual_seed(args.seed)

digits = load_digits()
X = torch.tensor(digits.data / 16.0, dtype=torch.float32)
X = (X - X.mean(0)) / (X.std(0) + 1e-6)
y = torch.tensor(digits.target)
perm = torch.randperm(len(y))
train_idx, test_idx = perm[:1300], perm[1300:]


class TanhNet(nn.Module):
    def __init__(self, width=128):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(64, width))
        self.b1 = nn.Parameter(torch.zeros(width))
        self.w2 = nn.Parameter(torch.randn(width, width))
        self.b2 = nn.Parameter(torch.zeros(width))
        self.w3 = nn.Parameter(torch.randn(width, width))
        self.b3 = nn.Parameter(torch.zeros(width))
        self.w_out = nn.Parameter(torch.randn(width, 10) * 0.05)
        self.b_out = nn.Parameter(torch.zeros(10))
        self.act = nn.Tanh()

    def forward(self, x):
        h = self.act(x @ self.w1 + self.b1)
        h = self.act(h @ self.w2 + self.b2)
        h = self.act(h @ self.w3 + self.b3)
        return h @ self.w_out + self.b_out


model = TanhNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
criterion = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    shuffled = train_idx[torch.randperm(len(train_idx))]
    for i in range(0, len(shuffled), 32):
        idx = shuffled[i : i + 32]
        optimizer.zero_grad()
        loss = criterion(model(X[idx]), y[idx])
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        test_acc = (model(X[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
    print(f"epoch {epoch:3d} loss {loss.item():.4f} test acc {test_acc:.3f}")
