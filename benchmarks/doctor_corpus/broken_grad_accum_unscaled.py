"""Gradient accumulation over 8 micro-batches of 8 to emulate a batch of 64. BUG: the micro-batch losses are not
divided by the number of accumulation steps, so the accumulated gradient is 8x the batch-64 gradient and the
effective learning rate is 8x the one chosen for batch 64."""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--accum-steps", type=int, default=8)
parser.add_argument("--lr", type=float, default=0.3)
args = parser.parse_args()
torch.manual_seed(args.seed)

digits = load_digits()
X = torch.tensor(digits.data, dtype=torch.float32) / 16.0
Y = torch.tensor(digits.target)
loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True, drop_last=True)

model = nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

for epoch in range(args.epochs):
    optimizer.zero_grad()
    running = 0.0
    for i, (xb, yb) in enumerate(loader):
        loss = criterion(model(xb), yb)
        loss.backward()
        running += loss.item()
        if (i + 1) % args.accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad()
    print(f"epoch {epoch}  mean micro-batch loss {running / len(loader):.4f}")
