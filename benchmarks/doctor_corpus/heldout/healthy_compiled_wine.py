"""A wine classifier trained through torch.compile where the installed PyTorch supports it (falling back to the eager
model otherwise): standardized features, MLP with dropout, Adam, a validation pass every 10 epochs. The compile
backend is "aot_eager" (TorchDynamo capture and AOTAutograd, no C++ code generation), so the script starts in seconds
on any CPU; --backend inductor compiles for real."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_wine


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--backend", default="aot_eager")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_wine(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(X))
    tr, va = perm[:140], perm[140:]
    mean, std = X[tr].mean(0), X[tr].std(0)
    X = (X - mean) / std

    model = nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
    try:
        compiled = torch.compile(model, backend=args.backend)
        compiled(X[:2])  # compile now: fall back to eager if this platform cannot
        print(f"compiled with {args.backend}")
    except Exception as error:  # no compiler, unsupported Python, ...
        print(f"torch.compile unavailable ({type(error).__name__}); training the eager model")
        compiled = model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(args.epochs):
        compiled.train()
        order = tr[torch.randperm(len(tr))]
        for i in range(0, len(order), 16):
            idx = order[i : i + 16]
            loss = F.cross_entropy(compiled(X[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 10 == 9:
            compiled.eval()
            with torch.no_grad():
                out = compiled(X[va])
            acc = (out.argmax(1) == y[va]).float().mean().item()
            val = F.cross_entropy(out, y[va]).item()
            print(f"epoch {epoch}: loss {loss.item():.4f} val loss {val:.4f} acc {acc:.3f}")


if __name__ == "__main__":
    main()
