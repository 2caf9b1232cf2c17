"""Shared pieces of the exact-oracle tests (Kalman filter / smoother references).

Test modules comparing filters with Kalman formulas to round-off run in float64::

    pytestmark = pytest.mark.usefixtures("float64_default")  # the fixture is in conftest

and draw their linear Gaussian system from :func:`linear_problem`.
"""

import torch
from torch import Tensor


def linear_problem(
    d: int, m: int, seed: int = 0
) -> tuple[torch.Generator, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """A random linear Gaussian system ``x_{k+1} = M x_k``, ``y = H x + ε``.

    ``M = 0.95 Q + 0.05 Z`` ``(d, d)`` with ``Q`` orthogonal (a contracting rotation:
    covariances stay bounded over the cycles and a window mixes all components), ``H``
    ``(m, d)`` Gaussian, noise std ``σ ∈ [0.3, 1.3)`` ``(m,)``, prior mean ``(d,)`` and
    covariance ``B Bᵀ/d + ½ I`` ``(d, d)``.

    Returns
    -------
    tuple
        ``(g, M, H, std, mean0, cov0)``, ``g`` the generator that drew them (seeded with
        ``seed``), to draw the truth and readings from next.
    """
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    M = 0.95 * Q + 0.05 * torch.randn(d, d, generator=g)
    H = torch.randn(m, d, generator=g)
    std = 0.3 + torch.rand(m, generator=g)
    mean0 = torch.randn(d, generator=g)
    B = torch.randn(d, d, generator=g)
    cov0 = B @ B.T / d + 0.5 * torch.eye(d)
    return g, M, H, std, mean0, cov0
