"""A two-layer nn.TransformerEncoder classifies token sequences by their most frequent token (synthetic data)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, LENGTH, N_CLASSES = 8, 16, 4


def make_data(n, generator):
    # tokens 0..3 are the classes; the label token is planted 6 times, the rest are random tokens
    labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    seqs = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
    for i in range(n):
        pos = torch.randperm(LENGTH, generator=generator)[:6]
        seqs[i, pos] = labels[i]
    return seqs, labels


class TransformerClassifier(nn.Module):
    def __init__(self, d_model=32, nhead=4, num_layers=2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.zeros(1, LENGTH, d_model))
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=64, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers)
        self.head = nn.Linear(d_model, N_CLASSES)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens) + self.pos)  # (batch, length, d_model)
        return self.head(h.mean(dim=1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    x_train, y_train = make_data(2048, gen)
    x_val, y_val = make_data(512, gen)

    model = TransformerClassifier()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 30))
    for step in range(args.steps):
        model.train()
        idx = torch.randint(0, len(x_train), (64,))
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 49:
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = F.cross_entropy(logits, y_val).item()
                acc = (logits.argmax(-1) == y_val).float().mean().item()
            print(f"step {step + 1}: train loss {loss.item():.3f}  val loss {val_loss:.3f}  val acc {acc:.3f}")


if __name__ == "__main__":
    main()
