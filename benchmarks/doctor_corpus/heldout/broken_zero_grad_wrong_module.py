"""Knowledge distillation on the digits: a teacher MLP is trained first, then a smaller student learns from the
teacher's softened outputs (KL divergence at temperature 4) plus the labels. BUG: in the distillation loop the
gradients are cleared with teacher.zero_grad() -- the wrong module --, so the student's gradients are never zeroed and
every step applies the sum of all past gradients."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)

    teacher = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))
    opt_t = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(teacher(x[idx]), y[idx])
            opt_t.zero_grad()
            loss.backward()
            opt_t.step()
        print(f"teacher epoch {epoch}: loss {loss.item():.4f}")
    teacher.eval()

    student = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt_s = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9)
    T = 4.0
    for epoch in range(args.epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            with torch.no_grad():
                soft = F.softmax(teacher(x[idx]) / T, dim=1)
            logits = student(x[idx])
            kd = F.kl_div(F.log_softmax(logits / T, dim=1), soft, reduction="batchmean") * T * T
            loss = 0.5 * kd + 0.5 * F.cross_entropy(logits, y[idx])
            teacher.zero_grad()  # BUG: should be opt_s.zero_grad()
            loss.backward()
            opt_s.step()
        with torch.no_grad():
            acc = (student(x).argmax(1) == y).float().mean().item()
        print(f"student epoch {epoch}: loss {loss.item():.4f} acc {acc:.3f}")


if __name__ == "__main__":
    main()
