"""A GRU reads variable-length sequences through pack_padded_sequence and says whether more of their entries are
positive than negative; padded batches, the last valid hidden state, Adam with a StepLR schedule."""

import argparse

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence


def make_data(n, generator):
    lengths = torch.randint(5, 31, (n,), generator=generator)
    seqs = [torch.randn(int(k), 1, generator=generator) for k in lengths]
    labels = torch.tensor([float((s > 0).sum() * 2 > len(s)) for s in seqs])
    return seqs, lengths, labels


class Counter(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, padded, lengths):
        packed = pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)  # h: (1, N, H), the state after each sequence's last valid entry
        return self.out(h[-1]).squeeze(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    seqs, lengths, labels = make_data(1000, g)
    val_seqs, val_lengths, val_labels = make_data(300, g)
    val_padded = pad_sequence(val_seqs, batch_first=True)

    model = Counter()
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    criterion = nn.BCEWithLogitsLoss()
    for epoch in range(args.epochs):
        perm = torch.randperm(len(seqs))
        for i in range(0, len(perm), 50):
            idx = perm[i : i + 50].tolist()
            padded = pad_sequence([seqs[j] for j in idx], batch_first=True)
            loss = criterion(model(padded, lengths[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            logits = model(val_padded, val_lengths)
            val_loss = criterion(logits, val_labels).item()
            acc = ((logits > 0).float() == val_labels).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.4f} val loss {val_loss:.4f} val acc {acc:.3f}")


if __name__ == "__main__":
    main()
