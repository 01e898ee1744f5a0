"""Classification of synthetic 20-d measurements into 5 classes, with (features, label) pairs built in a loop.
BUG: an off-by-one in the loop pairs each sample's features with the previous sample's label; the samples come in
random order, so every label is unrelated to its input and the loss stays at chance (log 5 ~ 1.61)."""

import argparse

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader


def make_samples(n, rng):
    centers = rng.normal(0, 2.0, size=(5, 20))
    labels = rng.integers(0, 5, size=n)
    features = centers[labels] + rng.normal(0, 1.0, size=(n, 20))
    return features.astype(np.float32), labels


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    features, labels = make_samples(2000, rng)
    pairs = []
    for i in range(1, len(features)):
        pairs.append((torch.from_numpy(features[i]), int(labels[i - 1])))
    loader = DataLoader(pairs, batch_size=64, shuffle=True)

    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        total, n = 0.0, 0
        for x, t in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), t)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(t)
            n += len(t)
        print(f"epoch {epoch + 1}: loss {total / n:.4f}")


if __name__ == "__main__":
    main()
