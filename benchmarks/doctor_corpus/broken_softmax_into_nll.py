"""Wine classifier with F.nll_loss. BUG: nll_loss expects log-probabilities but gets softmax probabilities, so the
"loss" is -p[y]: bounded in [-1, 0], its gradient vanishes as p saturates, and it is not a likelihood."""

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=60)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_wine(return_X_y=True)
X = torch.tensor(StandardScaler().fit_transform(X), dtype=torch.float32)
y = torch.tensor(y)
perm = torch.randperm(len(y))
train_idx, test_idx = perm[:130], perm[130:]


class WineNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(13, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return F.softmax(self.out(torch.relu(self.hidden(x))), dim=1)


model = WineNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for epoch in range(args.epochs):
    shuffled = train_idx[torch.randperm(len(train_idx))]
    for i in range(0, len(shuffled), 10):
        batch = shuffled[i : i + 10]
        loss = F.nll_loss(model(X[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if epoch % 10 == 9:
        with torch.no_grad():
            acc = (model(X[test_idx]).argmax(1) == y[test_idx]).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss.item():.4f} test acc {acc:.3f}")
