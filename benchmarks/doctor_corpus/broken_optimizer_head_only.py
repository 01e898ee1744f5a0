"""An encoder + head classifier on breast cancer, meant to be trained end to end. BUG: the optimizer gets only
model.head.parameters(); the encoder's parameters receive gradients that no optimizer applies."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 2)

    def forward(self, x):
        return self.head(self.encoder(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=args.seed)
    scaler = StandardScaler().fit(X_tr)
    train = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr))
    X_te = torch.tensor(scaler.transform(X_te), dtype=torch.float32)
    y_te = torch.tensor(y_te)
    loader = DataLoader(train, batch_size=32, shuffle=True)

    model = Net()
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            test_loss = criterion(model(X_te), y_te).item()
        print(f"epoch {epoch + 1:2d}  train loss {loss.item():.4f}  test loss {test_loss:.4f}")


if __name__ == "__main__":
    main()
