"""A Lightning-free Trainer class (fit / train_epoch / validate, callbacks as methods) on breast cancer: mixed
precision written device-agnostically -- bfloat16 autocast on a CPU, float16 autocast with a GradScaler on a GPU --,
gradient clipping after unscaling, AdamW, ReduceLROnPlateau on the validation loss."""

import argparse

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer


class Trainer:
    def __init__(self, model, optimizer, device, max_norm=1.0):
        self.model, self.optimizer, self.device = model.to(device), optimizer, device
        self.amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=2)
        self.criterion = nn.BCEWithLogitsLoss()
        self.max_norm = max_norm
        self.history = []

    def train_epoch(self, x, y, batch_size=32):
        self.model.train()
        perm = torch.randperm(len(x), device=self.device)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                loss = self.criterion(self.model(x[idx]).squeeze(1), y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.max_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.item()

    @torch.no_grad()
    def validate(self, x, y):
        self.model.eval()
        logits = self.model(x).squeeze(1)
        return self.criterion(logits, y).item(), ((logits > 0).float() == y).float().mean().item()

    def fit(self, train, val, epochs):
        for epoch in range(epochs):
            train_loss = self.train_epoch(*train)
            val_loss, acc = self.validate(*val)
            self.scheduler.step(val_loss)
            self.history.append(val_loss)
            print(f"epoch {epoch}: train loss {train_loss:.4f} val loss {val_loss:.4f} val acc {acc:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    X, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(args.seed).permutation(len(X))
    X, y = X[idx], y[idx]
    mean, std = X[:450].mean(0), X[:450].std(0)
    X = (X - mean) / std
    to = lambda a: torch.tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    train, val = (to(X[:450]), to(y[:450])), (to(X[450:]), to(y[450:]))

    model = nn.Sequential(nn.Linear(30, 64), nn.GELU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.GELU(), nn.Linear(32, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-2)
    Trainer(model, optimizer, device).fit(train, val, args.epochs)


if __name__ == "__main__":
    main()
