"""A small nn.TransformerEncoder classifies token sequences by the majority token among the first four positions.
BUG: the learning rate is 1e-6 (a typo for 1e-3): Adam moves every weight by ~1e-6 per step and the loss does not
leave its initial level over the whole budget."""

import argparse

import torch
import torch.nn as nn

VOCAB, LENGTH = 6, 12


class Classifier(nn.Module):
    def __init__(self, d=32):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.pos = nn.Parameter(0.1 * torch.randn(LENGTH, d))
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, tokens):
        return self.head(self.encoder(self.embed(tokens) + self.pos).mean(1))


def batch(n, generator):
    tokens = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
    label = (tokens[:, :4] % 3).mode(1).values
    return tokens, label


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    model = Classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)  # BUG: 1e-3 intended
    for step in range(args.steps):
        tokens, label = batch(64, g)
        loss = nn.functional.cross_entropy(model(tokens), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
