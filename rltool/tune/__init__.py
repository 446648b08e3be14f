"""``rltool tune``: Optuna hyperparameter search over the algorithms' search spaces.

:mod:`.samplers` holds one search space per algorithm (:data:`SAMPLERS`); :mod:`.study` is the
worker's entry point and names the other modules in the order it uses them. Importing this package
imports Optuna but not torch.
"""

from rltool.tune.options import TuneError, TuneOptions, TuneResult
from rltool.tune.samplers import SAMPLERS, register
from rltool.tune.study import tune

__all__ = ["SAMPLERS", "TuneError", "TuneOptions", "TuneResult", "register", "tune"]
