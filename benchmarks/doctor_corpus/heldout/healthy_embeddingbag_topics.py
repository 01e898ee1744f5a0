"""Bag-of-words topic classification on synthetic documents (each topic favours its own words): nn.EmbeddingBag with
offsets (variable-length documents in one flat tensor, as in the PyTorch text tutorial), SGD with StepLR per epoch,
gradient clipping at 0.1, accuracy on held-out documents every epoch."""

import argparse

import torch
import torch.nn as nn

VOCAB, TOPICS = 500, 4


def documents(n, generator):
    topic = torch.randint(0, TOPICS, (n,), generator=generator)
    lengths = torch.randint(10, 40, (n,), generator=generator)
    weights = torch.ones(TOPICS, VOCAB)
    for k in range(TOPICS):
        weights[k, k * 50 : (k + 1) * 50] = 8.0  # each topic's own 50 words are 8x as likely
    docs = [torch.multinomial(weights[t], int(length), replacement=True, generator=generator)
            for t, length in zip(topic, lengths, strict=True)]  # fmt: skip
    return docs, topic


def collate(docs):
    offsets = torch.tensor([0] + [len(d) for d in docs[:-1]]).cumsum(0)
    return torch.cat(docs), offsets


class TextClassifier(nn.Module):
    def __init__(self, dim=32):
        super().__init__()
        self.embedding = nn.EmbeddingBag(VOCAB, dim, mode="mean")
        self.fc = nn.Linear(dim, TOPICS)
        self.embedding.weight.data.uniform_(-0.5, 0.5)
        self.fc.weight.data.uniform_(-0.5, 0.5)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train_docs, train_y = documents(2000, g)
    test_docs, test_y = documents(400, g)

    model = TextClassifier()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.7)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(train_docs)).tolist()
        for i in range(0, len(perm), 64):
            idx = perm[i : i + 64]
            text, offsets = collate([train_docs[j] for j in idx])
            optimizer.zero_grad()
            loss = criterion(model(text, offsets), train_y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
            optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            out = model(*collate(test_docs))
        acc = (out.argmax(1) == test_y).float().mean().item()
        print(f"epoch {epoch}: loss {loss.item():.4f} test loss {criterion(out, test_y).item():.4f} acc {acc:.3f}")


if __name__ == "__main__":
    main()
