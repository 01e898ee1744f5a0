"""Dense symmetric test matrices with known spectra, shared by the curvature kernel tests (float64)."""

from __future__ import annotations

import torch

F64 = torch.float64


def symmetric_with_spectrum(eigenvalues: torch.Tensor, seed: int) -> torch.Tensor:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(eigenvalues.numel(), eigenvalues.numel(), generator=g, dtype=F64))
    return (q * eigenvalues) @ q.T


def random_symmetric(n: int, seed: int) -> torch.Tensor:
    """(A + A^T) / 2 for a Gaussian A: a semicircle spectrum."""
    a = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return (a + a.T) / 2
