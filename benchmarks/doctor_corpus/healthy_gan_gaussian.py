"""A small GAN learns a correlated 2-D Gaussian: generator and discriminator, two Adam optimizers, BCE-with-logits."""

import argparse

import torch
import torch.nn as nn

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--iters", type=int, default=1500)
parser.add_argument("--batch-size", type=int, default=128)
args = parser.parse_args()
torch.manual_seed(args.seed)

true_mean = torch.tensor([2.0, -1.0])
true_cov = torch.tensor([[1.0, 0.6], [0.6, 0.5]])
chol = torch.linalg.cholesky(true_cov)


def sample_real(n):
    return true_mean + torch.randn(n, 2) @ chol.T


latent_dim = 4
G = nn.Sequential(nn.Linear(latent_dim, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 2))
D = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))
opt_G = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999))
opt_D = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.999))
bce = nn.BCEWithLogitsLoss()

ones = torch.ones(args.batch_size, 1)
zeros = torch.zeros(args.batch_size, 1)
for it in range(args.iters):
    # discriminator: real -> 1, fake -> 0
    real = sample_real(args.batch_size)
    fake = G(torch.randn(args.batch_size, latent_dim))
    d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()

    # generator: make D call the fakes real
    g_loss = bce(D(fake), ones)
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()

    if it % 100 == 0 or it == args.iters - 1:
        with torch.no_grad():
            samples = G(torch.randn(2000, latent_dim))
            mean_err = (samples.mean(0) - true_mean).norm().item()
            cov_err = (torch.cov(samples.T) - true_cov).norm().item()
        print(f"iter {it:5d}  D loss {d_loss.item():.3f}  G loss {g_loss.item():.3f}  "
              f"|mean err| {mean_err:.3f}  |cov err| {cov_err:.3f}")  # fmt: skip
