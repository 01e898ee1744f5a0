"""A BatchNorm + Dropout MLP on digits. BUG: the script measures the accuracy before training with evaluate(),
which switches the model to eval mode, and nothing switches it back: every step trains in eval mode (BatchNorm
uses its never-updated running statistics, Dropout is off)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.bn1 = nn.BatchNorm1d(128)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.bn1(self.fc1(x)))))


def evaluate(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y))
    tr, va = perm[:1400], perm[1400:]
    loader = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True)

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss, acc = evaluate(model, x[va], y[va])
    print(f"before training: val loss {loss:.3f}, val acc {acc:.3f}")
    for epoch in range(args.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: last batch loss {loss.item():.4f}")
    loss, acc = evaluate(model, x[va], y[va])
    print(f"after training: val loss {loss:.3f}, val acc {acc:.3f}")


if __name__ == "__main__":
    main()
