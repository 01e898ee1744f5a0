"""Truncated backpropagation through time on one long token stream (as in pytorch/examples' word_language_model):
the hidden state is carried across chunks but detached, so gradients stop at the chunk boundary."""

import argparse

import torch
import torch.nn as nn


def make_stream(n_tokens, vocab, generator):
    # a Markov chain in which every token has two likely successors
    successors = torch.randint(0, vocab, (vocab, 2), generator=generator)
    stream = torch.empty(n_tokens, dtype=torch.long)
    stream[0] = 0
    for i in range(1, n_tokens):
        if torch.rand(1, generator=generator).item() < 0.1:
            stream[i] = torch.randint(0, vocab, (1,), generator=generator)
        else:
            stream[i] = successors[stream[i - 1], torch.randint(0, 2, (1,), generator=generator)]
    return stream


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()  # (time, batch)


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp=32, nhid=64):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid = nhid

    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return self.decoder(output), hidden

    def init_hidden(self, bsz):
        return (torch.zeros(1, bsz, self.nhid), torch.zeros(1, bsz, self.nhid))


def repackage_hidden(h):
    """Wraps hidden states in new Tensors, to detach them from their history."""
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--bptt", type=int, default=20)
    parser.add_argument("--clip", type=float, default=0.5)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    vocab = 16
    train_data = batchify(make_stream(20000, vocab, gen), 20)
    model = RNNModel(vocab)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    for epoch in range(1, args.epochs + 1):
        model.train()
        hidden = model.init_hidden(20)
        total_loss = 0.0
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            seq_len = min(args.bptt, train_data.size(0) - 1 - i)
            data, targets = train_data[i : i + seq_len], train_data[i + 1 : i + 1 + seq_len]
            hidden = repackage_hidden(hidden)
            optimizer.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, vocab), targets.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            optimizer.step()
            total_loss += loss.item()
            if batch % 10 == 9:
                print(f"| epoch {epoch} | batch {batch + 1:3d} | loss {total_loss / 10:5.2f}")
                total_loss = 0.0


if __name__ == "__main__":
    main()
