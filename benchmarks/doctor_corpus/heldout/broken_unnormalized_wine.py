"""An MLP on the raw wine features. BUG: the features are used as measured: proline is in the hundreds to ~1700,
magnesium ~100, hue and most others below 5, so the first layer's inputs differ in scale by three orders of
magnitude and SGD crawls along the small features while bouncing along the large ones."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_wine
from torch.utils.data import DataLoader, TensorDataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_wine(return_X_y=True)
    dataset = TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))
    train, test = torch.utils.data.random_split(dataset, [140, 38], generator=torch.Generator().manual_seed(args.seed))
    loader = DataLoader(train, batch_size=16, shuffle=True)
    model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        if epoch % 5 == 4:
            xt, yt = test[:]
            with torch.no_grad():
                acc = (model(xt).argmax(1) == yt).float().mean().item()
            print(f"epoch {epoch}: loss {loss.item():.4f} test acc {acc:.3f}")


if __name__ == "__main__":
    main()
