"""Softmax regression on iris: one nn.Linear, F.cross_entropy, full-batch SGD."""

import sys

import torch
import torch.nn.functional as F
from sklearn.datasets import load_iris

seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 0
epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 300
torch.manual_seed(seed)

data = load_iris()
X = torch.from_numpy(data.data).float()
X = (X - X.mean(dim=0)) / X.std(dim=0)
y = torch.from_numpy(data.target).long()

model = torch.nn.Linear(4, 3)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

for epoch in range(epochs):
    optimizer.zero_grad()
    loss = F.cross_entropy(model(X), y)
    loss.backward()
    optimizer.step()
    if epoch % 30 == 0:
        print(f"epoch {epoch}: loss = {loss.item():.4f}")

accuracy = (model(X).argmax(dim=1) == y).float().mean()
print(f"training accuracy: {accuracy.item():.3f}")
