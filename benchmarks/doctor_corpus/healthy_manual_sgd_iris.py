"""Full-batch gradient descent on iris without an optimizer object: p -= lr * p.grad under torch.no_grad()."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_iris

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--iters", type=int, default=500)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
torch.manual_seed(args.seed)

iris = load_iris()
x = torch.tensor(iris.data, dtype=torch.float32)
x = (x - x.mean(0)) / x.std(0)
y = torch.tensor(iris.target)

model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

for it in range(args.iters):
    loss = F.cross_entropy(model(x), y)
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= args.lr * p.grad
    if it % 50 == 0:
        acc = (model(x).argmax(1) == y).float().mean()
        print(f"iter {it:4d}  loss {loss.item():.4f}  acc {acc:.3f}")
print(f"final loss {loss.item():.4f}")
