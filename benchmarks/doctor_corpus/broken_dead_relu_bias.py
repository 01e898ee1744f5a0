"""A ReLU MLP on digits. BUG: the hidden biases are initialized to -3 (meant as "sparse activations"); with inputs in
[0, 1] and default weights the pre-activations are almost all negative, the ReLUs output 0 for every example, no
gradient reaches the hidden layers, and the network is stuck predicting the class frequencies."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=8)
args = parser.parse_args()
torch.manual_seed(args.seed)

model = nn.Sequential(
    nn.Linear(64, 128),
    nn.ReLU(),
    nn.Linear(128, 128),
    nn.ReLU(),
    nn.Linear(128, 10),
)
for layer in (model[0], model[2]):
    nn.init.constant_(layer.bias, -3.0)

X, y = load_digits(return_X_y=True)
loader = DataLoader(
    TensorDataset(torch.tensor(X / 16.0, dtype=torch.float32), torch.tensor(y)), batch_size=32, shuffle=True
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    losses = []
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"epoch {epoch + 1}: mean loss {sum(losses) / len(losses):.4f}")
