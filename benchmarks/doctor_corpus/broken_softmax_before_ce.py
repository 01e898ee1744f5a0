"""Digits MLP whose last layer is nn.Softmax. BUG: nn.CrossEntropyLoss applies log-softmax itself, so it receives
probabilities as if they were logits; the gradients shrink as the probabilities saturate and learning crawls."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_digits(return_X_y=True)
X_train, X_val, y_train, y_val = train_test_split(X / 16.0, y, test_size=0.2, random_state=args.seed)
train_loader = DataLoader(
    TensorDataset(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train)), batch_size=32, shuffle=True
)
X_val, y_val = torch.tensor(X_val, dtype=torch.float32), torch.tensor(y_val)

model = nn.Sequential(
    nn.Linear(64, 128),
    nn.ReLU(),
    nn.Linear(128, 10),
    nn.Softmax(dim=1),
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(args.epochs):
    model.train()
    for inputs, labels in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        probs = model(X_val)
        val_loss = criterion(probs, y_val).item()
        val_acc = (probs.argmax(1) == y_val).float().mean().item()
    print(
        f"Epoch {epoch + 1}/{args.epochs} - loss: {loss.item():.4f} - val_loss: {val_loss:.4f} - val_acc: {val_acc:.4f}"
    )
