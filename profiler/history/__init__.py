"""Questions about past calibrations, over plain records a database read fills:
``selection`` (which stored points: calibrations, a node type, a time window), ``compare``
(two sets point by point: bootstrap intervals and regressions), ``fleet`` (slow nodes of a
type) and ``plots`` (matplotlib, optional)."""
