"""Convolutional VAE with a state and an observation encoder (Latent-EnSF baseline, DESIGN 5.3).

Two encoders share one decoder:

.. math::
    q_x(z \\mid x) = N(μ_x(x), \\mathrm{diag}\\, e^{\\ell_x(x)}),\\qquad
    q_y(z \\mid y) = N(μ_y(y), \\mathrm{diag}\\, e^{\\ell_y(y)}),\\qquad \\hat x = D(z),

with ``x`` a normalised field ``(B, C, H, W)``, ``y`` a normalised observation vector ``(B, m)``
(NaN = missing reading) and ``z ∈ R^L``. Latent-EnSF (DESIGN 6.4) encodes each forecast member
with ``E_x``, the observation with ``E_y`` (its mean as the latent observation, its standard
deviation as the latent observation noise), runs EnSF on ``z`` and decodes with ``D``.

Training loss (:meth:`ConvVAE.loss`), every term per element of ``x`` (``n = C·H·W``):

.. math::
    \\mathcal L = \\overline{(D(z_x) - x)^2} + \\overline{(D(z_y) - x)^2}
        + λ\\, \\mathrm{KL}_{match} / n + β\\, \\mathrm{KL}(q_x \\,\\|\\, N(0, I)) / n,

``z_x ~ q_x``, ``z_y ~ q_y`` (reparameterised). With ``β = 1`` the state part is exactly the
negative ELBO of a Gaussian decoder with variance 1/2 in normalised units, divided by ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentda.errors import ConfigError, DataError
from latentda.schema import non_negative, parse, positive, to_dict
from latentda.surrogates.layers import activation, mlp

#: ``logvar`` bounds: keep ``exp`` finite and variances away from 0 so the KL terms (which
#: divide by a variance) cannot overflow early in training.
LOGVAR_MIN, LOGVAR_MAX = -12.0, 8.0

MatchKind = Literal["kl_state_obs", "kl_obs_state", "jeffreys"]


@dataclass
class VAEConfig:
    """Architecture and loss weights of a :class:`ConvVAE`.

    ``channels``, ``height``, ``width`` are the field shape ``(C, H, W)`` (any sizes; odd ones
    are padded on input and cropped on output); ``obs_dim`` is ``m``, the length of the
    observation vectors fed to ``E_y``. ``levels`` is the number of stride-2 downsamplings;
    ``conv_widths`` the channels at each level (``None``: ``min(32·2^i, 256)``).
    ``match`` picks the matching term (see :meth:`ConvVAE.loss`).
    """

    channels: int
    height: int
    width: int
    obs_dim: int
    latent_dim: int = 400
    levels: int = 4
    conv_widths: list[int] | None = None
    obs_hidden: int = 256
    obs_layers: int = 2
    activation: Literal["tanh", "gelu", "silu"] = "silu"
    beta_kl: float = 0.1
    match_weight: float = 1.0
    match: MatchKind = "kl_state_obs"
    seed: int = 0

    def validate(self, where: str = "vae") -> None:
        """Raise :class:`ConfigError` naming the first bad key."""
        positive(
            where,
            channels=self.channels,
            height=self.height,
            width=self.width,
            obs_dim=self.obs_dim,
            latent_dim=self.latent_dim,
            levels=self.levels,
            obs_hidden=self.obs_hidden,
            obs_layers=self.obs_layers,
        )
        non_negative(where, beta_kl=self.beta_kl, match_weight=self.match_weight)
        if self.conv_widths is not None:
            if len(self.conv_widths) != self.levels:
                raise ConfigError(
                    f"{where}.conv_widths: needs one width per level ({self.levels}), "
                    f"got {len(self.conv_widths)}"
                )
            positive(where, **{f"conv_widths[{i}]": w for i, w in enumerate(self.conv_widths)})

    @property
    def widths(self) -> list[int]:
        """Channels at each downsampling level, ``(levels,)``."""
        if self.conv_widths is not None:
            return list(self.conv_widths)
        return [min(32 * 2**i, 256) for i in range(self.levels)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able plain dict (inverse of :meth:`from_dict`)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "vae") -> VAEConfig:
        """Validated config from a plain dict; unknown keys or bad values raise ConfigError."""
        return parse(cls, data, where)


def kl_gaussians(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """Closed-form ``KL(N(μ₁, e^{ℓ₁}) ‖ N(μ₂, e^{ℓ₂}))`` (diagonal): ``(B, L)`` -> ``(B,)``.

    Per dimension ``½[e^{t} − 1 − t + (μ₁ − μ₂)² e^{−ℓ₂}]`` with ``t = ℓ₁ − ℓ₂``, written with
    ``expm1`` so that it stays ``>= 0`` in floating point when the two are nearly equal.
    """
    t = logvar1 - logvar2
    per_dim = torch.expm1(t) - t + (mu1 - mu2).square() * torch.exp(-logvar2)
    return 0.5 * per_dim.sum(dim=-1)


def kl_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(μ, e^{ℓ}) ‖ N(0, I))``, ``(B, L)`` -> ``(B,)``."""
    return kl_gaussians(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar))


def _split_gaussian(h: Tensor) -> tuple[Tensor, Tensor]:
    mu, logvar = h.chunk(2, dim=-1)
    return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


class ConvVAE(nn.Module):
    """Convolutional VAE with state encoder ``E_x``, observation encoder ``E_y``, decoder ``D``.

    Fields are padded (replicate, bottom/right) to a multiple of ``2^levels``, encoded by
    ``levels`` stride-2 conv blocks and a linear head; the decoder mirrors it with transposed
    convolutions and crops back to exactly ``(C, H, W)``. No batch normalisation: an encoded
    ensemble member must not depend on the other members in the batch.

    ``E_y`` is an MLP on ``[ỹ, mask]`` (``(B, 2m)``): missing readings (NaN) are zeroed in
    ``ỹ`` and flagged 0 in the presence mask, so the encoder can tell "missing" from "zero".

    Parameters
    ----------
    config
        Architecture and loss weights; validated here.
    """

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        config.validate()
        self.config = c = config
        widths = c.widths
        scale = 2**c.levels
        self.pad_h, self.pad_w = (-c.height) % scale, (-c.width) % scale
        self.h0, self.w0 = (c.height + self.pad_h) // scale, (c.width + self.pad_w) // scale
        flat = widths[-1] * self.h0 * self.w0
        # Weights from the config's seed without disturbing the caller's global RNG stream.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            enc: list[nn.Module] = [nn.Conv2d(c.channels, widths[0], 3, padding=1)]
            enc.append(activation(c.activation))
            prev = widths[0]
            for w in widths:
                enc += [nn.Conv2d(prev, w, 4, stride=2, padding=1), activation(c.activation)]
                enc += [nn.Conv2d(w, w, 3, padding=1), activation(c.activation)]
                prev = w
            self.state_conv = nn.Sequential(*enc)
            self.state_head = nn.Linear(flat, 2 * c.latent_dim)

            self.obs_net = mlp(
                2 * c.obs_dim, c.obs_hidden, 2 * c.latent_dim, c.obs_layers, c.activation
            )

            self.dec_in = nn.Linear(c.latent_dim, flat)
            dec: list[nn.Module] = [activation(c.activation)]
            outs = [widths[0], *widths[:-1]]  # channels after each upsampling, deepest first
            for w_in, w_out in zip(reversed(widths), reversed(outs), strict=True):
                dec += [nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1)]
                dec += [activation(c.activation), nn.Conv2d(w_out, w_out, 3, padding=1)]
                dec += [activation(c.activation)]
            dec.append(nn.Conv2d(widths[0], c.channels, 3, padding=1))
            self.state_deconv = nn.Sequential(*dec)

    # ------------------------------------------------------------------ encoders
    def encode_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``E_x``: normalised fields ``(B, C, H, W)`` -> ``(μ_x, ℓ_x)``, each ``(B, L)``."""
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.channels, c.height, c.width):
            raise DataError(
                f"VAE state encoder expects fields (B, {c.channels}, {c.height}, {c.width}), "
                f"got {tuple(x.shape)}"
            )
        if self.pad_h or self.pad_w:
            x = F.pad(x, (0, self.pad_w, 0, self.pad_h), mode="replicate")
        h = self.state_conv(x).flatten(1)
        return _split_gaussian(self.state_head(h))

    def encode_obs(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """``E_y``: normalised observations ``(B, m)`` (NaN = missing) -> ``(μ_y, ℓ_y)``, ``(B, L)``
        each."""
        if y.ndim != 2 or y.shape[1] != self.config.obs_dim:
            raise DataError(
                f"VAE observation encoder expects (B, {self.config.obs_dim}), got {tuple(y.shape)}"
            )
        present = torch.isfinite(y)
        filled = torch.where(present, y, torch.zeros_like(y))
        h = self.obs_net(torch.cat([filled, present.to(y.dtype)], dim=-1))
        return _split_gaussian(h)

    # ------------------------------------------------------------------ decoder
    def decode(self, z: Tensor) -> Tensor:
        """``D``: latents ``(B, L)`` -> normalised fields ``(B, C, H, W)``."""
        c = self.config
        h = self.dec_in(z).view(z.shape[0], -1, self.h0, self.w0)
        return self.state_deconv(h)[..., : c.height, : c.width]

    def forward(self, x: Tensor) -> Tensor:
        """Deterministic reconstruction ``D(μ_x(x))``, ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        return self.decode(self.encode_state(x)[0])

    @staticmethod
    def reparameterise(mu: Tensor, logvar: Tensor, gen: torch.Generator | None = None) -> Tensor:
        """Sample ``z = μ + e^{ℓ/2} ε``, ``ε ~ N(0, I)`` drawn from ``gen``; shapes ``(B, L)``."""
        eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    # ------------------------------------------------------------------ training objective
    def match_term(self, mu_x: Tensor, lv_x: Tensor, mu_y: Tensor, lv_y: Tensor) -> Tensor:
        """Matching divergence between ``q_x`` and ``q_y`` per sample, ``(B,)``.

        ``"kl_state_obs"`` (default) is ``KL(q_x ‖ q_y)``. Minimising it over ``σ_y²`` gives
        ``σ_y² = σ_x² + (μ_x − μ_y)²``: the observation encoder's variance becomes a calibrated
        estimate of its own error, which is exactly what Latent-EnSF uses as the latent
        observation noise; and it divides by ``σ_y²`` (the less certain, obs-side variance),
        so a sharp state posterior (small ``β``) cannot blow the term up.
        ``"kl_obs_state"`` is ``KL(q_y ‖ q_x)`` (forces ``σ_y = σ_x`` and divides by ``σ_x²``);
        ``"jeffreys"`` is the symmetric sum of both.
        """
        kind = self.config.match
        if kind == "kl_state_obs":
            return kl_gaussians(mu_x, lv_x, mu_y, lv_y)
        if kind == "kl_obs_state":
            return kl_gaussians(mu_y, lv_y, mu_x, lv_x)
        return kl_gaussians(mu_x, lv_x, mu_y, lv_y) + kl_gaussians(mu_y, lv_y, mu_x, lv_x)

    def loss(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None) -> dict[str, Tensor]:
        """Training loss on fields ``x`` ``(B, C, H, W)`` and their observations ``y`` ``(B, m)``.

        Returns scalar tensors ``total``, ``recon_state`` (MSE of ``D(z_x)``), ``recon_obs``
        (MSE of ``D(z_y)``), ``match`` (:meth:`match_term` / n) and ``kl`` (``KL(q_x‖N(0,I))``
        / n), batch means, with ``total = recon_state + recon_obs + λ·match + β·kl``.
        Both MSEs compare with ``x``: the observation latent must decode to the full state.
        """
        c = self.config
        n = c.channels * c.height * c.width
        mu_x, lv_x = self.encode_state(x)
        mu_y, lv_y = self.encode_obs(y)
        z_x = self.reparameterise(mu_x, lv_x, gen)
        z_y = self.reparameterise(mu_y, lv_y, gen)
        # One decoder pass for both latents halves the Python overhead of the conv stack.
        recon = self.decode(torch.cat([z_x, z_y], dim=0))
        recon_state = F.mse_loss(recon[: x.shape[0]], x)
        recon_obs = F.mse_loss(recon[x.shape[0] :], x)
        match = self.match_term(mu_x, lv_x, mu_y, lv_y).mean() / n
        kl = kl_standard_normal(mu_x, lv_x).mean() / n
        total = recon_state + recon_obs + c.match_weight * match + c.beta_kl * kl
        return {
            "total": total,
            "recon_state": recon_state,
            "recon_obs": recon_obs,
            "match": match,
            "kl": kl,
        }


def latent_std(logvar: Tensor) -> Tensor:
    """Standard deviations ``e^{ℓ/2}`` (e.g. the latent observation noise for Latent-EnSF)."""
    return torch.exp(0.5 * logvar)
