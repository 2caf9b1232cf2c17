"""History-aware observation encoders (DESIGN 5.2): observation histories -> (latent, params).

Both encoders are causal LSTMs, ``(ŝ_t, û_t) = head(h_t)``, ``h_t = LSTM(e(y_t), h_{t−1})``,
and differ in the per-time input ``e(y_t)``:

- :class:`FixedOrderEncoder` (the paper's): the vector of all readings in a fixed sensor
  order, ``e = σ(W [ỹ, m])`` with missing readings (NaN) zeroed in ``ỹ`` and flagged in the
  presence mask ``m``, so a failed sensor does not crash it (but the layout is fixed).
- :class:`LocationAwareEncoder`: each sensor ``j`` is embedded with Fourier features of its
  coordinates, ``φ_j = MLP([γ(ξ_j), ỹ_j, m_j])``, and the embeddings of the sensors with at
  least one present reading are pooled by a masked mean and max,
  ``e = σ(W [mean_j φ_j, max_j φ_j])``. The result is invariant to the sensor order, a NaN
  sensor is exactly an absent one, and sensors may move or be re-laid out.

Inputs are normalised readings ``(B, T, S, C)`` (per-channel z-scores; NaN = missing) and,
for the location-aware encoder, coordinates in ``[-1, 1]`` of shape ``(S, k)`` (fixed) or
``(B, T, S, k)`` (moving). Outputs ``(B, T, d_s + p)`` are in the LDNet's latent units and
normalised parameters (the training targets' standardisation is undone inside).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from latentda.schema import positive
from latentda.surrogates.layers import FourierFeatures, activation, mlp

State = tuple[Tensor, Tensor]


@dataclass
class EncoderConfig:
    """Architecture of an observation encoder."""

    mode: Literal["fixed", "location"] = "fixed"
    hidden: int = 128
    lstm_layers: int = 1
    embed: int = 64
    embed_layers: int = 2
    fourier_features: int = 16
    fourier_scale: float = 1.0
    activation: Literal["tanh", "gelu", "silu"] = "gelu"
    seed: int = 0

    def validate(self, where: str) -> None:
        positive(
            where,
            hidden=self.hidden,
            lstm_layers=self.lstm_layers,
            embed=self.embed,
            embed_layers=self.embed_layers,
            fourier_features=self.fourier_features,
            fourier_scale=self.fourier_scale,
        )


class _Encoder(nn.Module):
    """Shared LSTM core and output standardisation; subclasses define :meth:`embed`."""

    def __init__(self, config: EncoderConfig, n_in: int, n_out: int) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Linear(n_in, config.hidden)
        self.act = activation(config.activation)
        self.lstm = nn.LSTM(config.hidden, config.hidden, config.lstm_layers, batch_first=True)
        self.head = nn.Linear(config.hidden, n_out)
        # Output standardisation (set from the training targets) and the latent-observation
        # noise estimate (set from validation residuals), both in output units.
        self.register_buffer("target_mean", torch.zeros(n_out))
        self.register_buffer("target_std", torch.ones(n_out))
        self.register_buffer("noise_std", torch.ones(n_out))

    def embed(self, readings: Tensor, locations: Tensor | None) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(
        self, readings: Tensor, locations: Tensor | None = None, state: State | None = None
    ) -> tuple[Tensor, State]:
        """``readings`` ``(B, T, S, C)`` -> estimates ``(B, T, d_out)`` and the LSTM state,
        which continues the sequence in a later call (streaming use in a filter)."""
        h, state = self.lstm(self.act(self.inp(self.embed(readings, locations))), state)
        return self.head(h) * self.target_std + self.target_mean, state


class FixedOrderEncoder(_Encoder):
    """Readings of ``S`` sensors × ``C`` channels in a fixed order (see module docstring)."""

    def __init__(self, config: EncoderConfig, n_sensors: int, n_channels: int, n_out: int) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            super().__init__(config, 2 * n_sensors * n_channels, n_out)
        self.n_sensors, self.n_channels = n_sensors, n_channels

    def embed(self, readings: Tensor, locations: Tensor | None) -> Tensor:
        if readings.shape[-2:] != (self.n_sensors, self.n_channels):
            raise ValueError(
                f"this encoder reads {self.n_sensors} sensors × {self.n_channels} channels in a "
                f"fixed order, got {tuple(readings.shape[-2:])}; use a location-aware encoder "
                "for other layouts"
            )
        present = ~torch.isnan(readings)
        values = torch.where(present, readings, torch.zeros_like(readings))
        return torch.cat([values.flatten(-2), present.to(values.dtype).flatten(-2)], dim=-1)


class LocationAwareEncoder(_Encoder):
    """Per-sensor embeddings of (coordinates, readings), pooled over present sensors."""

    def __init__(
        self, config: EncoderConfig, n_channels: int, n_out: int, coord_dim: int = 2
    ) -> None:
        c = config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            super().__init__(c, 2 * c.embed, n_out)
            self.features = FourierFeatures(
                coord_dim, c.fourier_features, c.fourier_scale, c.seed + 1, trainable=False
            )
            self.sensor = mlp(
                2 * c.fourier_features + 2 * n_channels,
                c.embed,
                c.embed,
                c.embed_layers,
                c.activation,
            )
        self.n_channels = n_channels

    def embed(self, readings: Tensor, locations: Tensor | None) -> Tensor:
        if locations is None:
            raise ValueError("a location-aware encoder needs the sensor coordinates")
        b, t, s, _ = readings.shape
        present = ~torch.isnan(readings)
        values = torch.where(present, readings, torch.zeros_like(readings))
        gamma = self.features(locations).expand(b, t, s, -1)
        phi = self.sensor(torch.cat([gamma, values, present.to(values.dtype)], dim=-1))
        alive = present.any(-1, keepdim=True)  # (B, T, S, 1): a sensor with any reading
        count = alive.sum(-2).clamp(min=1)
        mean = torch.where(alive, phi, torch.zeros_like(phi)).sum(-2) / count
        low = torch.finfo(phi.dtype).min
        peak = torch.where(alive, phi, torch.full_like(phi, low)).amax(-2)
        peak = torch.where(alive.any(-2), peak, torch.zeros_like(peak))  # no sensor at all
        return torch.cat([mean, peak], dim=-1)


def build_encoder(
    config: EncoderConfig, n_sensors: int, n_channels: int, n_out: int, coord_dim: int = 2
) -> _Encoder:
    """The encoder of ``config.mode``."""
    if config.mode == "location":
        return LocationAwareEncoder(config, n_channels, n_out, coord_dim)
    return FixedOrderEncoder(config, n_sensors, n_channels, n_out)
