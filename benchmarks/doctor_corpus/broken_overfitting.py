"""A wide MLP trained on only 60 digit images for many epochs, no regularization, validated every 10 epochs on 600
held-out images. BUG: the model memorizes its tiny training set; the validation loss bottoms out early and then
climbs while the training loss goes to zero (and the script never stops early)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits


class WideMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 512)
        self.fc2 = nn.Linear(512, 512)
        self.fc3 = nn.Linear(512, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n-train", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    perm = torch.randperm(len(y))
    train_idx, val_idx = perm[: args.n_train], perm[args.n_train : args.n_train + 600]

    model = WideMLP()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        model.train()
        shuffled = train_idx[torch.randperm(len(train_idx))]
        for i in range(0, len(shuffled), 20):
            batch = shuffled[i : i + 20]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 10 == 0 or epoch == args.epochs - 1:
            model.eval()
            with torch.no_grad():
                val_loss = F.cross_entropy(model(x[val_idx]), y[val_idx]).item()
            print(f"epoch {epoch:3d}  train loss {loss.item():.5f}  val loss {val_loss:.4f}")


if __name__ == "__main__":
    main()
