"""A CNN with BatchNorm and Dropout on digits, validated after every epoch. BUG: model.train() is called once before
the epoch loop; validate() switches to eval mode, so from the second epoch on the model trains in eval mode."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(32 * 2 * 2, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


def validate(model, loader, criterion):
    model.eval()
    loss, n = 0.0, 0
    with torch.no_grad():
        for x, y in loader:
            loss += criterion(model(x), y).item() * len(y)
            n += len(y)
    return loss / n


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    images = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(digits.target)
    split = torch.randperm(len(labels))
    train_loader = DataLoader(TensorDataset(images[split[:1400]], labels[split[:1400]]), batch_size=32, shuffle=True)
    val_loader = DataLoader(TensorDataset(images[split[1400:]], labels[split[1400:]]), batch_size=128)

    model = Net()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for epoch in range(args.epochs):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: train loss {loss.item():.4f}  val loss {validate(model, val_loader, criterion):.4f}")


if __name__ == "__main__":
    main()
