"""latentda: data assimilation in learned latent spaces.

The package is layered (see DESIGN.md section 2): ``systems`` (full-order models) ->
``observations`` (observers) -> ``filters`` (analysis schemes) -> ``experiments`` (twin
experiments, metrics, configuration) -> ``cli``. A lower layer never imports a higher one.
"""

from latentda.errors import ConfigError, DataError, FilterDivergence, LatentDAError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "FilterDivergence", "LatentDAError", "__version__"]
