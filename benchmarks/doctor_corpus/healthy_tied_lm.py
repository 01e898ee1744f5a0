"""A character-level GRU language model whose output layer shares its weight with the input embedding
(weight tying, Press & Wolf 2017), trained on random windows of a generated text."""

import argparse
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

SUBJECTS = ["the cat", "a dog", "my friend", "the bird", "our teacher"]
VERBS = ["sees", "likes", "follows", "draws", "finds"]
OBJECTS = ["the ball", "a tree", "the river", "some bread", "a small house"]


def generate_text(rng, n_sentences):
    return " ".join(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(n_sentences))


class CharLM(nn.Module):
    def __init__(self, vocab_size, dim=48):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.decoder = nn.Linear(dim, vocab_size)
        self.decoder.weight = self.embedding.weight  # tied

    def forward(self, idx):
        h, _ = self.rnn(self.embedding(idx))
        return self.decoder(h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--block", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    text = generate_text(rng, 2000)
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text])
    print(f"{len(text)} characters, vocabulary {len(chars)}")

    model = CharLM(len(chars))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    for step in range(args.steps):
        starts = torch.randint(0, len(data) - args.block - 1, (32,))
        xb = torch.stack([data[s : s + args.block] for s in starts])
        yb = torch.stack([data[s + 1 : s + 1 + args.block] for s in starts])
        logits = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, len(chars)), yb.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(f"step {step:4d} loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
