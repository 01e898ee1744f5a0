"""Wine classification (13 standardized features, 3 classes) with SGD + OneCycleLR, stepped every batch."""

import argparse

import torch
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=40)
args = parser.parse_args()
torch.manual_seed(args.seed)

X, y = load_wine(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed)
scaler = StandardScaler().fit(X_tr)
X_tr = torch.tensor(scaler.transform(X_tr), dtype=torch.float32)
X_te = torch.tensor(scaler.transform(X_te), dtype=torch.float32)
y_tr, y_te = torch.tensor(y_tr), torch.tensor(y_te)
train_loader = DataLoader(TensorDataset(X_tr, y_tr), batch_size=16, shuffle=True)

model = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=0.05, epochs=args.epochs, steps_per_epoch=len(train_loader)
)

for epoch in range(args.epochs):
    model.train()
    for xb, yb in train_loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        scheduler.step()
    if epoch % 5 == 4:
        model.eval()
        with torch.no_grad():
            out = model(X_te)
            print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, test loss {loss_fn(out, y_te).item():.4f}, "
                  f"test acc {(out.argmax(1) == y_te).float().mean().item():.3f}")  # fmt: skip
