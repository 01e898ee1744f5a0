"""nn.Transformer (encoder-decoder) learns to reverse short token sequences with teacher forcing and a causal mask;
AdamW with a linear warm-up (LambdaLR per step), label smoothing, dropout."""

import argparse
import math

import torch
import torch.nn as nn

VOCAB, LENGTH, BOS = 10, 6, 0  # tokens 1..9, 0 starts the decoder input


class Reverser(nn.Module):
    def __init__(self, d_model=32):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.randn(LENGTH, d_model) * 0.1)
        self.transformer = nn.Transformer(
            d_model, nhead=4, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=64, dropout=0.1,
            batch_first=True,
        )  # fmt: skip
        self.out = nn.Linear(d_model, VOCAB)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(LENGTH))

    def forward(self, src, tgt_in):
        s = self.embed(src) * math.sqrt(self.embed.embedding_dim) + self.pos
        t = self.embed(tgt_in) * math.sqrt(self.embed.embedding_dim) + self.pos
        return self.out(self.transformer(s, t, tgt_mask=self.mask, tgt_is_causal=True))  # (N, T, V)


def batch(n, generator):
    src = torch.randint(1, VOCAB, (n, LENGTH), generator=generator)
    tgt = src.flip(1)
    tgt_in = torch.cat([torch.full((n, 1), BOS), tgt[:, :-1]], 1)
    return src, tgt_in, tgt


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)

    model = Reverser()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    warmup = 20
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.05)
    for step in range(args.steps):
        model.train()
        src, tgt_in, tgt = batch(32, g)
        logits = model(src, tgt_in)
        loss = criterion(logits.reshape(-1, VOCAB), tgt.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % 50 == 0 or step == args.steps - 1:
            model.eval()
            with torch.no_grad():
                src, tgt_in, tgt = batch(256, g)
                acc = (model(src, tgt_in).argmax(-1) == tgt).float().mean().item()
            print(f"step {step}: loss {loss.item():.4f} token acc {acc:.3f}")


if __name__ == "__main__":
    main()
