"""Latent Dynamics Network (LDNet): a latent ODE driven by the parameters, decoded pointwise.

Dynamics (DESIGN 5.1), with normalised parameters ``u ∈ [-1, 1]^p`` and latent ``s ∈ R^{d_s}``:

.. math::
    s_{k+1} = s_k + Δt\\, F([u, s_k]),\\qquad Δt = \\text{latent\\_dt} \\times (\\text{frames
    advanced}),

explicit Euler, with ``F`` an MLP. Systems driven by a known periodic forcing (the sphere's
moving heat source turns once a day, a third of a turn per 8-h frame) get its phase as an input,
as LDNet's time-dependent inputs (Regazzoni et al. 2024): ``F([u, φ(k), s_k])`` with
``φ(k) = [cos 2π(k₀ + k)/P_i, sin 2π(k₀ + k)/P_i]_i`` (:class:`ForcingClock`); an autonomous
``F`` would have to learn the forcing's clock as a latent oscillator.

Start, ``initial = "shifted"``: the latent *before* frame 0 is zero, so ``s_0 = Δt F([u, 0])``
and the initial state may depend on ``u``. ``initial = "learned"``: one trainable ``s_0`` per
training trajectory (auto-decoder), for data whose initial states vary independently of the
parameters.

Reconstruction (mesh-free): the normalised field at a coordinate ``ξ ∈ [-1, 1]^k`` is

.. math::
    R(s, ξ) = W_{out}\\, \\mathrm{Res}^{(L)}\\big(W_γ γ(ξ) + W_s s + b\\big),\\qquad
    γ(ξ) = [\\sin 2πBξ, \\cos 2πBξ],

i.e. a linear layer on ``[γ(ξ), s]`` (split in two so the coordinate part is computed once per
point and the latent part once per frame), then residual blocks ``y = σ(L₂σ(L₁x)) + x``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from latentda.schema import positive
from latentda.surrogates.layers import (
    ForcingClock,
    FourierFeatures,
    ResidualBlock,
    activation,
    concat_inputs,
    mlp,
)


@dataclass
class LDNetConfig:
    """Architecture of an LDNet (the data fix ``p``, ``C`` and the coordinate dimension)."""

    latent_dim: int = 9
    dyn_width: int = 64
    dyn_layers: int = 3
    recon_width: int = 128
    recon_blocks: int = 4
    fourier_features: int = 64
    fourier_scale: float = 2.0
    trainable_fourier: bool = False
    #: Snap the Fourier frequencies to the domain's period on the data's periodic axes.
    periodic_features: bool = True
    #: Feed the data's known forcing phase to ``F`` (:class:`ForcingClock`), if it has one.
    forcing_inputs: bool = True
    activation: Literal["tanh", "gelu", "silu"] = "gelu"
    latent_dt: float = 0.1
    initial: Literal["shifted", "learned"] = "shifted"
    seed: int = 0

    def validate(self, where: str) -> None:
        positive(
            where,
            latent_dim=self.latent_dim,
            dyn_width=self.dyn_width,
            dyn_layers=self.dyn_layers,
            recon_width=self.recon_width,
            recon_blocks=self.recon_blocks,
            fourier_features=self.fourier_features,
            fourier_scale=self.fourier_scale,
            latent_dt=self.latent_dt,
        )


class LDNet(nn.Module):
    """LDNet for ``p`` parameters and ``C`` channels on a ``k``-dimensional domain.

    Parameters
    ----------
    config
        Architecture.
    n_params, n_channels, coord_dim
        ``p``, ``C``, ``k``.
    n_initial
        Number of learned initial latents (training trajectories) when
        ``config.initial == "learned"``; ignored otherwise.
    periods
        Period of each coordinate axis in units of ``ξ`` (``None``: not periodic), used when
        ``config.periodic_features``; see :class:`FourierFeatures`.
    clock
        The data's known forcing clock, used when ``config.forcing_inputs``; ``None`` or no
        periods: ``F`` sees ``[u, s]`` only.
    """

    def __init__(
        self,
        config: LDNetConfig,
        n_params: int,
        n_channels: int,
        coord_dim: int = 2,
        n_initial: int = 0,
        periods: tuple[float | None, ...] | list[float | None] | None = None,
        clock: ForcingClock | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.n_params, self.n_channels, self.coord_dim = n_params, n_channels, coord_dim
        self.periods = tuple(periods) if periods is not None else None
        use_clock = config.forcing_inputs and clock is not None and clock.periods
        self.clock = clock if use_clock else None
        n_clock = self.clock.dim if self.clock else 0
        c = config
        # Weights come from the config's seed without touching the global RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.dynamics = mlp(
                n_params + n_clock + c.latent_dim,
                c.dyn_width,
                c.latent_dim,
                c.dyn_layers,
                c.activation,
            )
            self.features = FourierFeatures(
                coord_dim,
                c.fourier_features,
                c.fourier_scale,
                c.seed + 1,
                c.trainable_fourier,
                self.periods if c.periodic_features else None,
            )
            self.lift_xi = nn.Linear(2 * c.fourier_features, c.recon_width)
            self.lift_s = nn.Linear(c.latent_dim, c.recon_width, bias=False)
            self.act = activation(c.activation)
            self.blocks = nn.Sequential(
                *[ResidualBlock(c.recon_width, c.activation) for _ in range(c.recon_blocks)]
            )
            self.head = nn.Linear(c.recon_width, n_channels)
            self.n_initial = n_initial if c.initial == "learned" else 0
            if self.n_initial:
                self.initial_latents = nn.Parameter(
                    0.01 * torch.randn(self.n_initial, c.latent_dim)
                )

    def dims(self) -> dict[str, Any]:
        """What the data fixed (JSON-ready): :meth:`from_dims` rebuilds the architecture."""
        return {
            "n_params": self.n_params,
            "n_channels": self.n_channels,
            "coord_dim": self.coord_dim,
            "n_initial": self.n_initial,
            "periods": self.periods,
            "clock": self.clock.to_dict() if self.clock else None,
        }

    @classmethod
    def from_dims(cls, config: LDNetConfig, dims: Mapping[str, Any]) -> LDNet:
        """An untrained LDNet with ``config`` and the data-fixed :meth:`dims` of another."""
        dims = dict(dims)
        clock = ForcingClock.from_dict(dims.pop("clock", None))
        return cls(config, **dims, clock=clock)

    # ------------------------------------------------------------------ dynamics
    def velocity(self, s: Tensor, u: Tensor, k: float | Tensor = 0.0) -> Tensor:
        """``F([u, φ(k), s])``: ``s`` ``(…, d_s)``, ``u`` ``(…, p)`` -> ``(…, d_s)``; ``k`` (the
        frame index, float or broadcasting to ``(…,)``) matters only with a forcing clock."""
        if self.clock is None:
            return self.dynamics(torch.cat([u, s], dim=-1))
        return self.dynamics(concat_inputs([u, self.clock.features(k, s), s]))

    def step(
        self, s: Tensor, u: Tensor, frames: float | Tensor = 1.0, k: float | Tensor = 0.0
    ) -> Tensor:
        """One Euler step from frame ``k`` over ``frames`` frame spacings (any positive real,
        e.g. for irregular observation times): ``s + frames·latent_dt·F([u, φ(k), s])``."""
        return s + (frames * self.config.latent_dt) * self.velocity(s, u, k)

    def initial_latent(self, u: Tensor, which: Tensor | None = None) -> Tensor:
        """Latent at frame 0, ``(B, d_s)``: ``Δt F([u, φ(−1), 0])`` (shifted start: one step
        from zero at frame −1), or the learned ``s_0`` of training trajectories ``which``
        ``(B,)`` (learned start)."""
        if self.n_initial:
            if which is None:
                raise ValueError("a learned-start LDNet needs the trajectory indices (or s0)")
            return self.initial_latents[which]
        return self.step(u.new_zeros(*u.shape[:-1], self.config.latent_dim), u, k=-1.0)

    def rollout(
        self, u: Tensor, n_frames: int, s0: Tensor | None = None, which: Tensor | None = None
    ) -> Tensor:
        """Latent trajectories ``(B, T, d_s)`` for normalised parameters ``u`` ``(B, p)``,
        from ``s0`` ``(B, d_s)`` at frame 0 if given, else from :meth:`initial_latent`."""
        s = self.initial_latent(u, which) if s0 is None else s0
        out = [s]
        for k in range(n_frames - 1):
            s = self.step(s, u, k=float(k))
            out.append(s)
        return torch.stack(out, dim=-2)

    # ------------------------------------------------------------------ reconstruction
    def coordinate_lift(self, xi: Tensor) -> Tensor:
        """``W_γ γ(ξ) + b``: ``(…, P, k)`` -> ``(…, P, width)``; reusable across latents."""
        return self.lift_xi(self.features(xi))

    def reconstruct(self, s: Tensor, xi: Tensor, lifted: Tensor | None = None) -> Tensor:
        """Normalised field values ``(…, P, C)`` at coordinates ``xi`` ``(…, P, k)`` (in
        ``[-1, 1]``) for latents ``s`` ``(…, d_s)``; the leading dims broadcast, e.g.
        ``s`` ``(B, T, d_s)`` with per-frame points ``xi`` ``(T, P, k)``."""
        h = (self.coordinate_lift(xi) if lifted is None else lifted) + self.lift_s(s).unsqueeze(-2)
        return self.head(self.blocks(self.act(h)))

    def dynamics_parameters(self) -> list[nn.Parameter]:
        """Weights that determine the latent trajectories (frozen in stage 2)."""
        ps = list(self.dynamics.parameters())
        return ps + ([self.initial_latents] if self.n_initial else [])

    def reconstruction_parameters(self) -> list[nn.Parameter]:
        """Weights of the reconstruction network (trained in both stages)."""
        dyn = {id(p) for p in self.dynamics_parameters()}
        return [p for p in self.parameters() if id(p) not in dyn]
