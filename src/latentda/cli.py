"""Command-line front end (typer). No logic of its own: it parses arguments, calls the Python
API and turns user errors into one line on stderr and exit code 2."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from latentda.errors import ConfigError, LatentDAError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Data assimilation in learned latent spaces (latentda).",
    pretty_exceptions_enable=False,
)


class DemoName(StrEnum):
    kolmogorov = "kolmogorov"
    l96 = "l96"


@app.command()
def run(
    experiment: Annotated[Path, typer.Argument(help="Twin-experiment YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    override: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a config key, e.g. --set method.inflation=1.02."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a twin experiment (a simulated system, or stored trajectories of a field system
    when the file names a dataset with `data:`); writes OUT/metrics.json and
    OUT/analysis.nc."""
    from latentda.experiments import TwinConfig, load_yaml, run_twin
    from latentda.experiments.run import experiment_config

    config = experiment_config(load_yaml(experiment), override or [])
    if not isinstance(config, TwinConfig):
        from latentda.experiments.field_run import run_field

        summary = run_field(config, out=out, progress=progress)
        means = {k: summary[k]["time_mean"]["mean"] for k in ("rel_rmse", "crps", "coverage90")}
        typer.echo(
            f"{summary['method']}: rel_rmse={means['rel_rmse']:.4f} crps={means['crps']:.4f} "
            f"coverage90={means['coverage90']:.3f} param_rel_error(final)="
            f"{summary['param_rel_error']['final']['mean']:.4f} over "
            f"{summary['n_finished']}/{summary['n_runs']} runs, wall_s={summary['wall_s']:.1f}"
            f" -> {out / 'metrics.json'}"
        )
        return
    summary, _ = run_twin(config, out=out, progress=progress)
    typer.echo(
        f"rmse_a={summary['rmse_a']:.4f} rmse_f={summary['rmse_f']:.4f} "
        f"spread_a={summary['spread_a']:.4f} crps_a={summary['crps_a']:.4f} "
        f"wall_s={summary['wall_s']:.2f} -> {out / 'metrics.json'}"
    )


@app.command()
def demo(
    name: Annotated[DemoName, typer.Argument(help="Which demo.")] = DemoName.kolmogorov,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="kolmogorov: output and cache directory.")
    ] = Path("runs/demo"),
    cycles: Annotated[
        int | None, typer.Option(min=10, help="l96: fewer cycles for a quick look.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Run a demo and print its table. kolmogorov (default): the benchmark pipeline at a
    small size (data, LDNet, encoder, LD-EnSF against its no-assimilation reference; cached
    under OUT); l96: classical filters on Lorenz-96 (Sakov & Oke 2008)."""
    if name == DemoName.l96:
        from latentda.experiments.demo import format_table, run_l96_demo

        rows = run_l96_demo(cycles=cycles, progress=progress)
        typer.echo(format_table(rows))
        return
    if cycles is not None:
        raise ConfigError("--cycles applies to the l96 demo only")
    _benchmark("kolmogorov", "demo", out, None, None, None, [], progress)


def _benchmark(
    system: str,
    size: str,
    out: Path,
    cache: Path | None,
    trajectories: int | None,
    seeds: str | None,
    override: list[str],
    progress: bool,
    surrogates_only: bool = False,
) -> None:
    from latentda.experiments.benchmark import benchmark_config, run_benchmark
    from latentda.experiments.config import merge, parse_overrides

    options = parse_overrides(override)
    if trajectories is not None:
        options = merge(options, {"test_trajectories": trajectories})
    if seeds is not None:
        try:
            options = merge(options, {"seeds": [int(v) for v in seeds.split(",")]})
        except ValueError:
            raise ConfigError(
                f"--seeds takes integers separated by commas, got {seeds!r}"
            ) from None
    config = benchmark_config(system, size, options)
    results = run_benchmark(
        config,
        out,
        cache,
        progress=progress,
        log=lambda line: typer.echo(line, err=True),
        surrogates_only=surrogates_only,
    )
    if surrogates_only:
        for setting, kinds in results.items():
            for kind, directory in kinds.items():
                typer.echo(f"{setting} {kind}: {directory}")
        return
    typer.echo((out / "tables.md").read_text())
    typer.echo(f"results: {out / 'results.json'}")
    typer.echo("figures: " + ", ".join(results["figures"]))


@app.command()
def benchmark(
    system: Annotated[str, typer.Option(help="Field system: kolmogorov, tsunami, sphere.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    size: Annotated[
        str, typer.Option(help="Preset: ci, bench, paper (or demo, the demo's).")
    ] = "ci",
    trajectories: Annotated[
        int | None, typer.Option(help="Test trajectories (>= 10 except at ci).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds of readings and filters, e.g. 0,1,2.")
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Datasets and trained surrogates, reused across runs [OUT/cache]."),
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a setting, e.g. --set ldnet.stage1.epochs=50."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    surrogates_only: Annotated[
        bool,
        typer.Option(help="Stop once the data and the methods' surrogates are in the cache."),
    ] = False,
) -> None:
    """Every field method on the same test trajectories: generates or reuses the data,
    trains or reuses the surrogates, tunes knobs on validation trajectories; writes
    OUT/results.json, OUT/tables.md and figures."""
    _benchmark(
        system, size, out, cache, trajectories, seeds, override or [], progress, surrogates_only
    )


@app.command()
def simulate(
    system: Annotated[str, typer.Option(help="Full-order model: kolmogorov, tsunami, sphere.")],
    trajectories: Annotated[int, typer.Option(help="Number of trajectories.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Zarr store to write (*.zarr).")],
    size: Annotated[str, typer.Option(help="Named resolution: ci, bench, paper.")] = "ci",
    seed: Annotated[int, typer.Option(help="Seeds parameters, splits and initial states.")] = 0,
    batch: Annotated[int, typer.Option(help="Trajectories simulated together.")] = 1,
    override: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a system option, e.g. --set init=random."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Simulate trajectories over the parameter prior into a zarr store (resumable; under
    torchrun each rank writes its own share)."""
    from latentda.data import generate_dataset
    from latentda.experiments.config import parse_overrides
    from latentda.systems.registry import field_system

    options = parse_overrides(override or [])
    nested = sorted(k for k, v in options.items() if isinstance(v, dict))
    if nested:
        raise ConfigError(f"--set takes flat system options (e.g. init=random), got {nested}")
    model = field_system(system, size, **options)
    report = generate_dataset(out, model, trajectories, seed, batch=batch, progress=progress)
    typer.echo(
        f"{out}: {report.generated} trajectories generated, {report.skipped} already present "
        f"(of {report.total}; this rank's share)"
    )


@app.command()
def plot(
    dataset: Annotated[Path, typer.Argument(help="Zarr store written by `latentda simulate`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Image file (png, pdf, svg).")],
    trajectory: Annotated[int, typer.Option(help="Trajectory index.")] = 0,
    frame: Annotated[int, typer.Option(help="Frame index.")] = 0,
) -> None:
    """Draw every channel of one frame of a dataset."""
    from latentda.data import open_dataset
    from latentda.experiments.plots import plot_frame

    ds = open_dataset(dataset, require_complete=False)
    typer.echo(plot_frame(ds, trajectory, frame, out))


train_app = typer.Typer(
    no_args_is_help=True, help="Train surrogates (resumable; data-parallel under torchrun)."
)
app.add_typer(train_app, name="train")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML with training settings.")
]
TensorBoardOption = Annotated[
    Path | None,
    typer.Option(help="Also log losses to TensorBoard here (needs `pip install tensorboard`)."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting, e.g. --set stage1.epochs=50."),
]


def _settings(config: Path | None, override: list[str] | None) -> dict:
    from latentda.experiments.config import load_yaml, merge, parse_overrides

    base = load_yaml(config) if config is not None else {}
    return merge(base, parse_overrides(override or []))


def _tensorboard(directory: Path | None):  # noqa: ANN202 - a log callback or None
    from latentda.surrogates.training import tensorboard_log

    return None if directory is None else tensorboard_log(directory)


def _training_data(data: Path, out: Path):  # noqa: ANN202 - an xarray.Dataset
    """Open the dataset, check that OUT is writable (before any long work) and join the
    process group when launched by torchrun."""
    from latentda.data import open_dataset
    from latentda.data.distributed import rank_and_world
    from latentda.io import prepare_output

    ds = open_dataset(data)
    prepare_output(out)
    rank_and_world()
    return ds


@train_app.command("ldnet")
def train_ldnet_command(
    data: Annotated[Path, typer.Option(help="Zarr store written by `latentda simulate`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    config: ConfigOption = None,
    override: SetOption = None,
    tensorboard: TensorBoardOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train an LDNet (stage 1 end to end, stage 2 reconstruction); writes OUT/ldnet.json,
    OUT/ldnet.safetensors and OUT/metrics.json."""
    from latentda.data.distributed import is_rank0
    from latentda.surrogates.train_ldnet import train_config, train_ldnet

    cfg = train_config(_settings(config, override))
    ds = _training_data(data, out)
    metrics = train_ldnet(ds, out, cfg, progress=progress, log=_tensorboard(tensorboard))
    if is_rank0():
        typer.echo(
            f"test_rel_rmse={metrics['test_rel_rmse']:.4f} (stage 1 "
            f"{metrics['test_rel_rmse_stage1']:.4f}; {metrics['averaged_over']['trajectories']} "
            f"test trajectories) train_time_s={metrics['train_time_s']:.1f} "
            f"parameters={metrics['parameters']} -> {out / 'metrics.json'}"
        )


@train_app.command("encoder")
def train_encoder_command(
    data: Annotated[Path, typer.Option(help="Zarr store written by `latentda simulate`.")],
    ldnet: Annotated[Path, typer.Option(help="Directory of a trained LDNet.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    config: ConfigOption = None,
    override: SetOption = None,
    tensorboard: TensorBoardOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train an observation encoder (fixed sensor order or location-aware) on the LDNet's
    latent trajectories; writes OUT/encoder.json, OUT/encoder.safetensors, OUT/metrics.json."""
    from latentda.data.distributed import is_rank0
    from latentda.surrogates.train_encoder import encoder_config, train_encoder

    cfg = encoder_config(_settings(config, override))
    ds = _training_data(data, out)
    m = train_encoder(ds, ldnet, out, cfg, progress=progress, log=_tensorboard(tensorboard))
    if is_rank0():
        typer.echo(
            f"latent_rel_error={m['latent_rel_error']:.4f} "
            f"param_rel_error={m['param_rel_error']:.4f} ({m['mode']}, {m['sensors']} sensors, "
            f"noise {m['noise_level']:g}; {m['averaged_over']['trajectories']} test "
            f"trajectories) -> {out / 'metrics.json'}"
        )


@train_app.command("vae")
def train_vae_command(
    data: Annotated[Path, typer.Option(help="Zarr store written by `latentda simulate`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    config: ConfigOption = None,
    override: SetOption = None,
    tensorboard: TensorBoardOption = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the VAE baseline (state and observation encoders, shared decoder) and VAE-dyn;
    writes OUT/vae.json, OUT/vae.safetensors and OUT/metrics.json."""
    from latentda.data.distributed import is_rank0
    from latentda.surrogates.train_vae import train_vae, vae_config

    cfg = vae_config(_settings(config, override))
    ds = _training_data(data, out)
    m = train_vae(ds, out, cfg, progress=progress, log=_tensorboard(tensorboard))
    if is_rank0():
        typer.echo(
            f"test_rel_rmse={m['test_rel_rmse']:.4f} (from observations "
            f"{m['test_rel_rmse_obs']:.4f}, VAE-dyn {m['test_rel_rmse_dyn']:.4f}; "
            f"{m['averaged_over']['trajectories']} test trajectories) "
            f"train_time_s={m['train_time_s']:.1f} -> {out / 'metrics.json'}"
        )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every user error -> one line on stderr and exit code 2
    (bad values and unknown keys from our own validation, and usage errors such as a missing
    option or an unknown command from the parser)."""
    try:
        code = app(args=argv, standalone_mode=False)
    except LatentDAError as exc:
        _fail(str(exc), 2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as exc:
        # The parser's usage errors carry their own message and exit code (2).
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            _fail(" ".join(str(exc.format_message()).split()), int(exc.exit_code))
        raise
    # Outside standalone mode the parser returns an exit code instead of exiting
    # (130 after Ctrl-C); commands themselves return None.
    if isinstance(code, int) and code:
        _fail("interrupted" if code == 130 else "", code)


def _fail(message: str, code: int) -> None:
    if message:  # "no arguments" has already printed the help and carries no message
        typer.echo(f"latentda: error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
