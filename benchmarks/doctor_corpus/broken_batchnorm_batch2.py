"""A BatchNorm MLP on wine, trained with batches of 2. BUG: BatchNorm's batch statistics over 2 examples are
extremely noisy (each normalized feature is +-1), so training is noisy and the running statistics used at test time
do not match what the network was trained on."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--batch-size", type=int, default=2)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_wine(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=args.seed, stratify=y)
sc = StandardScaler().fit(X_tr)
train_loader = DataLoader(
    TensorDataset(torch.tensor(sc.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr)),
    batch_size=args.batch_size,
    shuffle=True,
    drop_last=True,
)
X_te, y_te = torch.tensor(sc.transform(X_te), dtype=torch.float32), torch.tensor(y_te)

model = nn.Sequential(
    nn.Linear(13, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 3)
)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
for epoch in range(args.epochs):
    model.train()
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        out = model(X_te)
        test_loss = criterion(out, y_te).item()
        test_acc = (out.argmax(1) == y_te).float().mean().item()
    print(f"epoch {epoch}: test loss {test_loss:.4f}  test acc {test_acc:.3f}")
