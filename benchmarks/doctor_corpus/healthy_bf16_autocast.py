"""Mixed precision on the CPU: forward and loss under torch.autocast(bfloat16), backward and Adam in float32."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU())
        self.head = nn.Linear(128, 10)

    def forward(self, x):
        return self.head(self.body(x))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target)
    idx = torch.randperm(len(y))
    train = DataLoader(TensorDataset(x[idx[:1500]], y[idx[:1500]]), batch_size=64, shuffle=True)
    x_val, y_val = x[idx[1500:]], y[idx[1500:]]

    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        model.train()
        for xb, yb in train:
            optimizer.zero_grad()
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                logits = model(xb)
                loss = criterion(logits, yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad(), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            val_logits = model(x_val)
            val_loss = criterion(val_logits, y_val).item()
        acc = (val_logits.argmax(1) == y_val).float().mean().item()
        print(
            f"epoch {epoch}: loss {loss.item():.4f} (dtype {logits.dtype}), val loss {val_loss:.4f}, val acc {acc:.3f}"
        )


if __name__ == "__main__":
    main()
