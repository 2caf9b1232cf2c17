"""Twin experiments, metrics, the configuration schema and result writing."""

from latentda.experiments.config import TwinConfig, load_yaml, twin_config
from latentda.experiments.run import run_twin
from latentda.experiments.twin import TwinData, TwinExperiment, TwinResult

__all__ = [
    "TwinConfig",
    "TwinData",
    "TwinExperiment",
    "TwinResult",
    "load_yaml",
    "run_twin",
    "twin_config",
]
