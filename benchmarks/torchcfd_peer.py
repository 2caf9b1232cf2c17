"""Peer benchmark: torch-cfd's spectral Navier–Stokes on Kolmogorov flow (run by the torch-cfd
venv's python).

Standalone: imports torch-cfd (see ``torchcfd_venv.sh``) and never latentda. Usage::

    PY="$(bash benchmarks/torchcfd_venv.sh | tail -n 1)"
    "$PY" benchmarks/torchcfd_peer.py --dt 0.0133 --steps 15 [--n 64] [--batch 16]
        [--dtype float32|float64] [--viscosity 1e-3] [--init w0.pt] [--final w1.pt]
        [--forcing velocity|vorticity] [--repeats 3]

Setting: torch-cfd 0.2.6 ``NavierStokes2DSpectral`` on the periodic square ``[0, 2π)²`` with
``n × n`` points, viscosity ``ν``, linear drag 0.1 and ``KolmogorovForcing`` (``scale = 1``,
``wave_number = 4``: the x-momentum forcing ``sin(4y)``), 2/3 dealiasing (``smooth=True``),
as in torch-cfd's own Kolmogorov data generator (``fno/data_gen/data_gen_Kolmogorov2d.py``).
Time stepping: ``RK4CrankNicolsonStepper()``, its default low-storage Carpenter–Kennedy
RK4 with Crank–Nicolson diffusion (5 explicit evaluations per step), fixed ``dt``. (Its
``low_storage=False`` variant fails to construct in 0.2.6: integer ``betas`` cannot become
``nn.Parameter``.) ``--forcing vorticity`` evaluates the forcing's curl directly (one FFT per
stage instead of two).

Layout: torch-cfd indexes fields ``[x, y]``; ``--init`` and ``--final`` hold vorticity
``(B, n, n)`` in latentda's ``[y, x]`` layout (transposed here), float64. Without ``--init``
the initial vorticity is seeded white noise low-passed to ``|k| <= 8``.

Timing: wall time of ``steps`` steps of the whole batch (one ``.step`` call each, from the same
initial state every repeat), best of ``--repeats``, divided by ``steps × batch``. Prints one JSON
line.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--dt", type=float, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--viscosity", type=float, default=1e-3)
    p.add_argument("--drag", type=float, default=0.1)
    p.add_argument("--init", help="vorticity (B, n, n) [y, x] float64 (torch.save)")
    p.add_argument("--final", help="write the final vorticity (B, n, n) [y, x] here")
    p.add_argument("--forcing", default="velocity", choices=["velocity", "vorticity"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    import torch_cfd
    from torch_cfd.forcings import KolmogorovForcing
    from torch_cfd.grids import Grid
    from torch_cfd.spectral import NavierStokes2DSpectral, RK4CrankNicolsonStepper

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    # torch-cfd builds its meshes and tables in the default dtype.
    torch.set_default_dtype(dtype)
    n = args.n
    grid = Grid(shape=(n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    forcing = KolmogorovForcing(
        grid=grid, scale=1.0, wave_number=4, swap_xy=False, vorticity=args.forcing == "vorticity"
    )
    ns = NavierStokes2DSpectral(
        viscosity=args.viscosity,
        grid=grid,
        drag=args.drag,
        smooth=True,
        forcing_fn=forcing,
        step_fn=RK4CrankNicolsonStepper(),
    ).to(dtype)

    if args.init:
        w0 = torch.load(args.init).to(torch.float64)
        if tuple(w0.shape) != (args.batch, n, n):
            raise SystemExit(f"--init holds {tuple(w0.shape)}, expected {(args.batch, n, n)}")
        w0 = w0.transpose(-1, -2)  # [y, x] -> torch-cfd's [x, y]
    else:
        g = torch.Generator().manual_seed(0)
        noise = torch.fft.rfft2(torch.randn(args.batch, n, n, dtype=torch.float64, generator=g))
        k = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)
        kk = (k[:, None] ** 2 + k[None, : n // 2 + 1] ** 2).sqrt()
        w0 = torch.fft.irfft2(noise * (kk <= 8), s=(n, n))
    w_hat0 = torch.fft.rfft2(w0.to(dtype).contiguous())

    def run() -> tuple[float, torch.Tensor]:
        w_hat = w_hat0.clone()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            w_hat, _ = ns.step(w_hat, args.dt)
        return time.perf_counter() - t0, w_hat

    run()  # warm-up
    walls = []
    for _ in range(args.repeats):
        wall, w_hat = run()
        walls.append(wall)
    best = min(walls)
    if args.final:
        torch.save(
            torch.fft.irfft2(w_hat, s=(n, n)).transpose(-1, -2).to(torch.float64), args.final
        )
    print(
        json.dumps(
            {
                "library": "torch-cfd",
                "version": getattr(torch_cfd, "__version__", None) or _version(),
                "torch": torch.__version__,
                "n": n,
                "batch": args.batch,
                "dtype": args.dtype,
                "dt": args.dt,
                "steps": args.steps,
                "stepper": "RK4CrankNicolsonStepper (low-storage)",
                "forcing": args.forcing,
                "explicit_evaluations_per_step": 5,
                "threads": args.threads,
                "walls_s": walls,
                "wall_s": best,
                "ms_per_member_step": 1e3 * best / (args.steps * args.batch),
                "finite": bool(torch.isfinite(w_hat).all()),
            }
        )
    )


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("torch-cfd")
    except Exception:
        return None


if __name__ == "__main__":
    main()
