"""L2-regularized logistic regression on the breast-cancer data with L-BFGS (a closure re-evaluates the loss)."""

import argparse

import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--l2", type=float, default=1e-2)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=args.seed)
    scaler = StandardScaler().fit(X_train)
    X_train = torch.tensor(scaler.transform(X_train), dtype=torch.float32)
    X_test = torch.tensor(scaler.transform(X_test), dtype=torch.float32)
    y_train = torch.tensor(y_train, dtype=torch.float32)
    y_test = torch.tensor(y_test, dtype=torch.float32)

    model = torch.nn.Linear(30, 1)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=10, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model(X_train).squeeze(1), y_train) + args.l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    for step in range(args.steps):
        loss = optimizer.step(closure)
        with torch.no_grad():
            test_logits = model(X_test).squeeze(1)
            test_loss = loss_fn(test_logits, y_test).item()
            acc = ((test_logits > 0).float() == y_test).float().mean().item()
        print(f"step {step:2d}  loss {loss.item():.5f}  test loss {test_loss:.4f}  test acc {acc:.3f}")


if __name__ == "__main__":
    main()
