"""Digits MLP with Adam. BUG: the learning rate is 1e-6 (a typo for 1e-3): in the whole budget the weights move by
~1e-6 per step and the loss barely changes."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--lr", type=float, default=1e-6)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_digits(return_X_y=True)
X_tr, X_va, y_tr, y_va = train_test_split(X / 16.0, y, test_size=0.2, random_state=args.seed)
train_loader = DataLoader(
    TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr)), batch_size=32, shuffle=True
)
X_va, y_va = torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va)

model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
criterion = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    model.train()
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        val_loss = criterion(model(X_va), y_va).item()
    print(f"epoch {epoch}: train loss {loss.item():.4f}  val loss {val_loss:.4f}")
