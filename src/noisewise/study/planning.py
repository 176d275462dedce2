"""Seed planning (power): the names of :mod:`noisewise.study.analysis.planning`, re-exported.

The planning lives in ``noisewise.study.analysis.planning``; this module keeps
``noisewise.study.planning`` working for its importers.
"""

from noisewise.study.analysis.planning import (  # noqa: F401 -- _t_power_integral: read by the tests
    MAX_SEEDS,
    ArmPlan,
    _t_power_integral,
    detectable_effect_size,
    noether_sign,
    noether_wilcoxon,
    plan,
    seeds_for_effect_size,
    t_power,
)

__all__ = [
    "MAX_SEEDS", "ArmPlan", "detectable_effect_size", "noether_sign", "noether_wilcoxon", "plan",
    "seeds_for_effect_size", "t_power",
]
