"""A small MLP on the sklearn digits (8x8 images flattened), Adam, with a test pass after every epoch."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=15)
parser.add_argument("--lr", type=float, default=1e-3)
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

torch.manual_seed(args.seed)

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixels are 0..16
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=args.seed, stratify=y)

train_ds = TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train))
X_test = torch.tensor(X_test, dtype=torch.float32)
y_test = torch.tensor(y_test)
train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True)

model = nn.Sequential(
    nn.Linear(64, 128),
    nn.ReLU(),
    nn.Linear(128, 64),
    nn.ReLU(),
    nn.Linear(64, 10),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

for epoch in range(args.epochs):
    model.train()
    total = 0.0
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * xb.size(0)

    model.eval()
    with torch.no_grad():
        logits = model(X_test)
        test_loss = criterion(logits, y_test).item()
        acc = (logits.argmax(dim=1) == y_test).float().mean().item()
    print(
        f"epoch {epoch + 1:2d}  train loss {total / len(train_ds):.4f}  test loss {test_loss:.4f}  test acc {acc:.3f}"
    )
