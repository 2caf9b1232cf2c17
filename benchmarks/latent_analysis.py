"""Where the latent filter's error comes from (issue 5): on validation trajectories of a field
system, the relative RMSE of fields decoded from

- ``rollout``: the LDNet rolled out with the **true** parameters from its own start (the
  surrogate's floor: no filter can do better than its LDNet without leaving its manifold);
- ``encoder``: the encoder's latent observation ``φ_t`` decoded directly (gain 1, no ensemble);
- ``ensf``: LD-EnSF, EnSF analysis (:class:`~latentda.filters.latent_analysis.ScoreAnalysis`);
- ``etkf``: the same filter with the Kalman analysis
  (:class:`~latentda.filters.latent_analysis.KalmanAnalysis`).

Scores: time-mean and final-frame relative RMSE of the decoded ensemble mean (DESIGN 5.1),
final-frame parameter relative error of the ensemble mean, mean over ``--trajectories``
validation trajectories (never test ones), readings at the encoder's sensors with seed
``--seed``, every frame.

Usage::

    .venv/bin/python benchmarks/latent_analysis.py --data D.zarr --ldnet DIR --encoder DIR2 \\
        [--trajectories 3] [--scale 9] [--inflation 1.0] [--noise 0.1] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _common import save
from latentda.data import open_dataset
from latentda.experiments.field_twin import make_case
from latentda.experiments.twin import stream
from latentda.filters.etkf import ETKF
from latentda.filters.latent_analysis import KalmanAnalysis, ScoreAnalysis, ldensf_ensf
from latentda.filters.ldensf import LatentSurrogate, LDEnSF, decode_latents
from latentda.metrics import param_relative_error, relative_rmse


def per_frame(fields: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Relative RMSE per frame of fields ``(T, C, H, W)`` against the truth."""
    return relative_rmse(fields.flatten(1), truth.double().flatten(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--ldnet", type=Path, required=True)
    p.add_argument("--encoder", type=Path, required=True)
    p.add_argument("--trajectories", type=int, default=3)
    p.add_argument("--scale", type=float, default=9.0, help="LD-EnSF's EnSF scale c")
    p.add_argument("--inflation", type=float, default=1.0, help="the ETKF's inflation")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(1)

    ds = open_dataset(a.data)
    sur = LatentSurrogate.load(a.ldnet, a.encoder, ds)
    filters = {
        "ensf": LDEnSF(a.members, ScoreAnalysis(ldensf_ensf(a.scale))),
        "etkf": LDEnSF(a.members, KalmanAnalysis(ETKF(inflation=a.inflation))),
    }
    rows: dict[str, list[list[float]]] = {k: [] for k in ("rollout", "encoder", *filters)}
    for i in range(a.trajectories):
        case = make_case(ds, i, sur.sensors, sur.normaliser, a.noise, 1, 0.0, a.seed, "val")
        frames = range(case.n_frames)
        true_u = sur.normaliser.normalise_params(case.true_params.double()[None]).float()
        with torch.no_grad():
            s = sur.ldnet.rollout(true_u, case.n_frames).transpose(0, 1)  # (T, 1, d_s)
        e = per_frame(decode_latents(sur, s, frames), case.truth)
        rows["rollout"].append([float(e.mean()), float(e[-1]), 0.0])
        runs = {
            k: f.assimilate(sur, case.readings, stream(a.seed, "filter"))
            for k, f in filters.items()
        }
        # φ_t, the encoder's output, is the same for both filters.
        phi = runs["ensf"].latent_obs
        decoded = {k: (r.latent, r.params[-1].mean(0)) for k, r in runs.items()}
        u_phi = sur.normaliser.denormalise_params(phi[-1, sur.latent_dim :])
        decoded["encoder"] = (phi[:, None, : sur.latent_dim], u_phi)
        for name, (latent, u) in decoded.items():
            e = per_frame(decode_latents(sur, latent, frames), case.truth)
            perr = float(param_relative_error(u, case.true_params))
            rows[name].append([float(e.mean()), float(e[-1]), perr])
        print(f"trajectory {i}: " + ", ".join(f"{k} {v[-1][0]:.4f}" for k, v in rows.items()))
    results = {
        "trajectories": a.trajectories,
        "split": "val",
        "seed": a.seed,
        "scale": a.scale,
        "inflation": a.inflation,
        "rows": {k: torch.tensor(v).mean(0).tolist() for k, v in rows.items()},
    }
    print("\n| decoded from | rel. RMSE (time mean) | final | param. rel. error (final) |")
    print("|---|---|---|---|")
    for k, (mean, final, perr) in results["rows"].items():
        print(f"| {k} | {mean:.4f} | {final:.4f} | {perr if k != 'rollout' else 0:.3f} |")
    print(f"-> {save(f'latent-analysis-{a.data.stem}', results)}")


if __name__ == "__main__":
    main()
