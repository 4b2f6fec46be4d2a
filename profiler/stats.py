"""Robust statistics for timing samples: spread, outliers, and whether two figures differ.

A machine that others use bends single samples far more than it bends a median, so every
figure here is a median and every spread a median absolute deviation (MAD), scaled to
estimate a standard deviation. A difference that is smaller than the spread of the two
figures never decides anything: ``differs`` says whether it does.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

__all__ = [
    "MAD_TO_SIGMA",
    "between_runs_spread",
    "mean_error",
    "OUTLIER_MADS",
    "differs",
    "outliers",
    "relative_spread",
    "robust_sigma",
    "uncertainty",
]

#: a sample this many scaled MADs from the median is an outlier (kept, but flagged)
OUTLIER_MADS = 3.5
#: MAD * this estimates the standard deviation of normally distributed samples
MAD_TO_SIGMA = 1.4826
#: the standard error of a median is about this times sigma / sqrt(n)
_MEDIAN_ERROR = 1.2533
#: how many standard errors apart two medians must be to differ (about 95% two-sided)
_Z = 1.96


def _mad(samples: Sequence[float]) -> tuple[float, float]:
    median = statistics.median(samples)
    return median, statistics.median(abs(x - median) for x in samples)


def robust_sigma(values: Sequence[float], centre: float | None = None) -> float:
    """The scaled MAD of ``values`` around ``centre`` (their median by default): a standard
    deviation that a few wild values do not move."""
    if centre is None:
        centre = statistics.median(values)
    return MAD_TO_SIGMA * statistics.median(abs(x - centre) for x in values)


def relative_spread(samples: Sequence[float]) -> float:
    """The robust spread of ``samples`` (scaled MAD) relative to their median; 0 for < 2."""
    if len(samples) < 2:
        return 0.0
    median, mad = _mad(samples)
    return MAD_TO_SIGMA * mad / median if median > 0 else 0.0


def uncertainty(samples: Sequence[float]) -> float:
    """The relative standard error of the median of ``samples``."""
    if len(samples) < 2:
        return 0.0
    return _MEDIAN_ERROR * relative_spread(samples) / math.sqrt(len(samples))


def between_runs_spread(run_times: Sequence[float]) -> float:
    """The standard deviation of the runs' times relative to their mean: not a robust
    figure on purpose, since a run in another state is what jobs meet, not an outlier."""
    if len(run_times) < 2:
        return 0.0
    mean = statistics.fmean(run_times)
    return statistics.stdev(run_times) / mean if mean > 0 else 0.0


def mean_error(run_times: Sequence[float]) -> float:
    """The relative standard error of the mean of the runs' times."""
    return between_runs_spread(run_times) / math.sqrt(len(run_times)) if run_times else 0.0


def outliers(samples: Sequence[float], *, floor: float = 0.0) -> int:
    """How many samples lie more than OUTLIER_MADS scaled MADs from the median; ``floor``
    (relative to the median) is the least sigma taken, e.g. the spread between runs."""
    if len(samples) < 3:
        return 0
    median, mad = _mad(samples)
    # Timers resolve far better than a thousandth of a sample: below that, samples agree.
    mad = max(mad, 1e-3 * abs(median), floor * abs(median) / MAD_TO_SIGMA)
    if mad == 0:
        return 0
    return sum(abs(x - median) > OUTLIER_MADS * MAD_TO_SIGMA * mad for x in samples)


def differs(a: float, a_uncertainty: float, b: float, b_uncertainty: float) -> bool:
    """Whether figures ``a`` and ``b`` (with relative uncertainties) differ beyond their
    spread; a figure without samples to judge by (uncertainty 0) is taken at face value."""
    top = max(abs(a), abs(b))
    if top == 0:
        return False
    margin = _Z * math.hypot(a_uncertainty, b_uncertainty)
    return abs(a - b) / top > margin
