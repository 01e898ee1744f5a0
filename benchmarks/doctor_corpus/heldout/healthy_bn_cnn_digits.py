"""A CNN with BatchNorm2d on the 8x8 digits: SGD with Nesterov momentum and weight decay, cosine annealing per
epoch, model.train() / model.eval() switched around every evaluation (pytorch/examples' structure)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (N, 16, 4, 4)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # (N, 32, 2, 2)
        return self.fc(torch.flatten(x, 1))


def train(model, x, y, optimizer, epoch):
    model.train()
    perm = torch.randperm(len(x))
    for i in range(0, len(x), 32):
        idx = perm[i : i + 32]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
    print(f"Train Epoch: {epoch}\tLoss: {loss.item():.6f}")


def test(model, x, y):
    model.eval()
    with torch.no_grad():
        out = model(x)
        loss = F.cross_entropy(out, y, reduction="sum").item() / len(x)
        correct = (out.argmax(1) == y).sum().item()
    print(f"Test set: Average loss: {loss:.4f}, Accuracy: {correct}/{len(x)}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x))
    tr, te = perm[:1400], perm[1400:]
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    for epoch in range(1, args.epochs + 1):
        train(model, x[tr], y[tr], optimizer, epoch)
        test(model, x[te], y[te])
        scheduler.step()


if __name__ == "__main__":
    main()
