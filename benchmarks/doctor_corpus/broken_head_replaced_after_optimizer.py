"""Fine-tuning a frozen feature extractor with a new head. BUG: the optimizer is built before the head is replaced,
so it holds the old head's parameters (which no longer get gradients) and the new head is never updated."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

SHAPE_GROUP = torch.tensor([0, 1, 2, 2, 1, 2, 0, 1, 0, 0])  # loops / strokes / curves


class Classifier(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def run_epochs(model, optimizer, x, y, epochs, tag):
    for epoch in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 32):
            idx = perm[i : i + 32]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        print(f"[{tag}] epoch {epoch + 1}: loss {loss.item():.4f}, train acc {acc:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pretrain-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(x))
    source, target = perm[:900], perm[900:]

    model = Classifier(num_classes=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    run_epochs(model, optimizer, x[source], y[source], args.pretrain_epochs, "pretrain")

    for p in model.features.parameters():
        p.requires_grad = False
    optimizer = torch.optim.Adam(model.classifier.parameters(), lr=3e-3)
    model.classifier = nn.Linear(64, 3)
    run_epochs(model, optimizer, x[target], SHAPE_GROUP[y[target]], args.finetune_epochs, "finetune")


if __name__ == "__main__":
    main()
