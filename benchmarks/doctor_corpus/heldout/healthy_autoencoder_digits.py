"""An MLP autoencoder compresses the 8x8 digits to 8 numbers: sigmoid output layer, mean squared error against the
pixel intensities in [0, 1] (a regression, not a classification), Adam, test reconstruction error every epoch."""

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    perm = torch.randperm(len(x))
    train, test = x[perm[:1500]], x[perm[1500:]]
    loader = DataLoader(TensorDataset(train), batch_size=32, shuffle=True)

    encoder = nn.Sequential(nn.Linear(64, 48), nn.ELU(), nn.Linear(48, 8))
    decoder = nn.Sequential(nn.Linear(8, 48), nn.ELU(), nn.Linear(48, 64), nn.Sigmoid())
    autoencoder = nn.Sequential(encoder, decoder)
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=2e-3)
    mse = nn.MSELoss()
    for epoch in range(args.epochs):
        total = 0.0
        for (batch,) in loader:
            recon = autoencoder(batch)
            loss = mse(recon, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        with torch.no_grad():
            test_loss = mse(autoencoder(test), test).item()
        print(f"epoch {epoch}: train mse {total / len(train):.5f} test mse {test_loss:.5f}")


if __name__ == "__main__":
    main()
