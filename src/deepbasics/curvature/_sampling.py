"""Random probe vectors for the stochastic curvature estimators (one place for generator and device rules)."""

from __future__ import annotations

import torch

from .._checks import check_choice


def random_probes(
    dim: int,
    count: int | None = None,
    *,
    kind: str = "gaussian",
    dtype: torch.dtype,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random vectors, shape (dim,) when ``count`` is None else (dim, count).

    ``kind="gaussian"``: i.i.d. N(0, 1); ``"rademacher"``: i.i.d. +-1 with probability 1/2 (Hutchinson 1989).
    Drawn on the generator's device (so a seeded CPU generator gives the same probes whatever the model's device),
    then moved to ``device``; with no generator they are drawn on ``device`` from the global RNG.
    """
    check_choice(kind, "kind", ("gaussian", "rademacher"))
    shape = (dim,) if count is None else (dim, count)
    where = generator.device if generator is not None else device
    if kind == "gaussian":
        out = torch.randn(shape, generator=generator, dtype=dtype, device=where)
    else:
        out = torch.randint(0, 2, shape, generator=generator, device=where).to(dtype).mul_(2).sub_(1)
    return out.to(device)
