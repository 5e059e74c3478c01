"""robustmi.mi: neural mutual-information estimation (PAPER.md §2.2–2.3, §3).

- :mod:`~robustmi.mi.bounds`: DV (MINE), JSD, InfoNCE, NWJ lower bounds and SMILE, pure functions of critic
  scores; :mod:`~robustmi.mi.dv_moving_average`: MINE's moving-average DV gradient (stateful).
- :mod:`~robustmi.mi.critics`, :mod:`~robustmi.mi.image_critic`: separable, concat and the paper's
  image critic.
- :mod:`~robustmi.mi.estimate`: ``estimate_mi`` / ``estimate_mi_over_seeds`` (train a critic, select its
  step on validation pairs, report test nats with a confidence interval and sanity flags; below 50 000 pairs
  ten or five cross-fitted critics); :mod:`~robustmi.mi.splits` divides the pairs (one split or K folds);
  :mod:`~robustmi.mi.critic_training` trains and scores each critic through the training engine;
  :mod:`~robustmi.mi.representation`: ``estimate_mi_of``, the MI of an encoder's representation.
- :mod:`~robustmi.mi.confidence`: bootstrap and Student-t intervals, the negative-MI, overfit and
  convergence checks.
- :mod:`~robustmi.mi.dim`: ``DIMObjective``, the Deep InfoMax loss used to train encoders and in
  the worst-case search.
- :mod:`~robustmi.mi.worst_case`: ``worst_case_inputs``, Algorithm 1 (the one worst-case search of every
  caller: encoder training, Algorithm 2, per-neuron vulnerability, held-out MI).
"""

from robustmi.mi.bounds import (
    dv_bound,
    get_bound,
    infonce_bound,
    jsd_bound,
    list_bounds,
    nwj_bound,
    smile_bound,
)
from robustmi.mi.confidence import bootstrap_ci, t_interval
from robustmi.mi.critics import ConcatCritic, ImageCritic, SeparableCritic, create_critic, list_critics
from robustmi.mi.dim import DIMObjective, load_dim_objective, save_dim_objective
from robustmi.mi.dv_moving_average import DVMovingAverage, dv_moving_average_surrogate
from robustmi.mi.estimate import MIEstimate, estimate_mi, estimate_mi_over_seeds, report_bound_name
from robustmi.mi.representation import estimate_mi_of
from robustmi.mi.worst_case import WorstCase, worst_case_inputs

__all__ = [
    "ConcatCritic",
    "DIMObjective",
    "DVMovingAverage",
    "ImageCritic",
    "MIEstimate",
    "SeparableCritic",
    "WorstCase",
    "bootstrap_ci",
    "create_critic",
    "dv_bound",
    "dv_moving_average_surrogate",
    "estimate_mi",
    "estimate_mi_of",
    "estimate_mi_over_seeds",
    "get_bound",
    "infonce_bound",
    "jsd_bound",
    "list_bounds",
    "list_critics",
    "load_dim_objective",
    "nwj_bound",
    "report_bound_name",
    "save_dim_objective",
    "worst_case_inputs",
    "smile_bound",
    "t_interval",
]
