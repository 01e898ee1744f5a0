"""A variational autoencoder on the digits (64 pixels in [0, 1]): Bernoulli likelihood + KL to N(0, I)."""

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class VAE(nn.Module):
    def __init__(self, latent=4):
        super().__init__()
        self.fc1 = nn.Linear(64, 128)
        self.fc_mu = nn.Linear(128, latent)
        self.fc_logvar = nn.Linear(128, latent)
        self.fc3 = nn.Linear(latent, 128)
        self.fc4 = nn.Linear(128, 64)

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))  # logits of the 64 pixels

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def loss_function(recon_logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.size(0)


def main():
    parser = argparse.ArgumentParser(description="VAE on digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    x = torch.tensor(load_digits().data / 16.0, dtype=torch.float32)
    perm = torch.randperm(len(x))
    train_x, test_x = x[perm[:1500]], x[perm[1500:]]
    loader = DataLoader(TensorDataset(train_x), batch_size=64, shuffle=True)

    model = VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(1, args.epochs + 1):
        model.train()
        train_loss = 0.0
        for (batch,) in loader:
            optimizer.zero_grad()
            recon, mu, logvar = model(batch)
            loss = loss_function(recon, batch, mu, logvar)
            loss.backward()
            optimizer.step()
            train_loss += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            recon, mu, logvar = model(test_x)
            test_loss = loss_function(recon, test_x, mu, logvar).item()
        print(f"====> Epoch: {epoch} Average loss: {train_loss / len(train_x):.2f}  Test loss: {test_loss:.2f}")


if __name__ == "__main__":
    main()
