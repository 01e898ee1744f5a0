"""Wine classification from a tiny, noisily labelled training set: 24 examples (a quarter of their labels wrong), the
13 real features plus 60 pure-noise features, a wide two-layer MLP trained with Adam for hundreds of full-batch
epochs, validated every epoch on the other examples. BUG: nothing stops or regularizes training: the network
memorizes the 24 examples, wrong labels included (training loss -> 0), while the validation loss climbs steadily from
its minimum near epoch 25."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_wine


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    X, y = load_wine(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    X = (X - X.mean(0)) / X.std(0)
    X = torch.cat([X, torch.randn(len(X), 60)], 1)  # 60 features of pure noise
    perm = torch.randperm(len(X))
    tr, va = perm[:24], perm[24:]
    flip = tr[torch.rand(24) < 0.25]
    y_train = y.clone()
    y_train[flip] = (y[flip] + 1) % 3  # label noise in the small training set

    model = nn.Sequential(nn.Linear(73, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    for epoch in range(args.epochs):
        model.train()
        loss = F.cross_entropy(model(X[tr]), y_train[tr])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            val = F.cross_entropy(model(X[va]), y[va]).item()
        if epoch % 25 == 0 or epoch == args.epochs - 1:
            print(f"epoch {epoch}: train loss {loss.item():.5f} val loss {val:.4f}")


if __name__ == "__main__":
    main()
