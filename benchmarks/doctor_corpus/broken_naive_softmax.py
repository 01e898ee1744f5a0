"""A cosine classifier on digits (NormFace / CosFace style): a 3-d embedding (as in those papers' feature plots),
normalized, compared by cosine with a learned vector per class and multiplied by a scale s = 100 (CLIP's largest
logit scale), then a hand-written softmax module and a negative log-likelihood. In 3 dimensions some cosines are close
to 1 from the start, so logits reach ~100. BUG: the softmax computes exp(z) / sum(exp(z)) without subtracting
max(z); a logit above ~88.7 overflows exp in float32 to inf, inf / inf = nan, and the loss is nan from the first
batch, where F.cross_entropy on the same logits is finite."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


class Softmax(nn.Module):
    def forward(self, logits):
        e = torch.exp(logits)
        return e / e.sum(dim=1, keepdim=True)


class CosineClassifier(nn.Module):
    def __init__(self, n_classes=10, dim=3, scale=100.0):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, dim))
        self.class_vectors = nn.Parameter(torch.randn(n_classes, dim))
        self.scale = scale
        self.softmax = Softmax()

    def forward(self, x):
        h = F.normalize(self.encoder(x), dim=1)
        w = F.normalize(self.class_vectors, dim=1)
        return self.softmax(self.scale * h @ w.T)


def nll(probs, targets):
    return -torch.log(probs[torch.arange(len(targets)), targets]).mean()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    digits = load_digits()
    loader = DataLoader(
        TensorDataset(torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)),
        batch_size=32,
        shuffle=True,
    )
    model = CosineClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(args.epochs):
        for i, (x, y) in enumerate(loader):
            loss = nll(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i % 20 == 0:
                print(f"epoch {epoch} batch {i:2d}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
