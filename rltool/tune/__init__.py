"""``rltool tune``: Optuna hyperparameter search over the algorithms' search spaces.

:mod:`rltool.tune.samplers` holds one search space per algorithm (:data:`SAMPLERS`);
:mod:`rltool.tune.study` holds storage, study, trials, the exact global trial cap and results.
Importing this package imports Optuna but not torch.
"""

from rltool.tune.samplers import SAMPLERS, register
from rltool.tune.study import TuneError, TuneOptions, TuneResult, tune

__all__ = ["SAMPLERS", "TuneError", "TuneOptions", "TuneResult", "register", "tune"]
