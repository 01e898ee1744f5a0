"""A tiny vision transformer: each 8x8 digit becomes 16 patches of 2x2 pixels, one nn.MultiheadAttention block
with a residual MLP, mean pooling, a linear head."""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn


class AttentionBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        h = self.norm1(x)
        attn_out, _ = self.attn(h, h, h, need_weights=False)
        x = x + attn_out
        return x + self.mlp(self.norm2(x))


class PatchNet(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.patch = nn.Linear(4, dim)
        self.pos = nn.Parameter(torch.randn(1, 16, dim) * 0.02)
        self.block = AttentionBlock(dim, heads)
        self.head = nn.Linear(dim, 10)

    def forward(self, images):  # (B, 8, 8)
        b = images.shape[0]
        patches = images.reshape(b, 4, 2, 4, 2).permute(0, 1, 3, 2, 4).reshape(b, 16, 4)  # (B, 16 patches, 4 px)
        h = self.block(self.patch(patches) + self.pos)
        return self.head(h.mean(1))


parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()
torch.manual_seed(args.seed)

digits = load_digits()
images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
labels = torch.tensor(digits.target)
order = torch.randperm(len(labels))
train_idx, val_idx = order[:1500], order[1500:]

model = PatchNet()
optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
loss_fn = nn.CrossEntropyLoss()
for epoch in range(args.epochs):
    model.train()
    shuffled = train_idx[torch.randperm(len(train_idx))]
    for start in range(0, len(shuffled), 50):
        batch = shuffled[start : start + 50]
        loss = loss_fn(model(images[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        val_logits = model(images[val_idx])
        val_loss = loss_fn(val_logits, labels[val_idx])
        acc = (val_logits.argmax(1) == labels[val_idx]).float().mean()
    print(f"epoch {epoch + 1:2d} | train loss {loss.item():.4f} | val loss {val_loss.item():.4f} | val acc {acc:.3f}")
