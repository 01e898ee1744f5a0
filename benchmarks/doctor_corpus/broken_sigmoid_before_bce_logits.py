"""Breast-cancer classifier ending in nn.Sigmoid, trained with nn.BCEWithLogitsLoss. BUG: the loss applies the
sigmoid again, so it sees values in (0, 1) as logits: the loss can never go below log(1 + e^-1) ~ 0.31 on a
positive example and the gradients are squashed."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset


class Classifier(nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, 32),
            nn.ReLU(),
            nn.Linear(32, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=args.seed)
    sc = StandardScaler().fit(X_train)
    train = TensorDataset(torch.tensor(sc.transform(X_train), dtype=torch.float32), torch.tensor(y_train).float())
    X_test = torch.tensor(sc.transform(X_test), dtype=torch.float32)
    y_test = torch.tensor(y_test).float()

    model = Classifier(30)
    criterion = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in DataLoader(train, batch_size=32, shuffle=True):
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            p = model(X_test)
            print(f"epoch {epoch:2d}: test loss {criterion(p, y_test).item():.4f}, "
                  f"test acc {((p > 0.5).float() == y_test).float().mean().item():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
