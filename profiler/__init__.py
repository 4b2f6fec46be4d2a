"""blasprof's measurement science: probe, timing, sweep, presets, and the command line.

Nothing here touches a database or submitit; ``profiler.cli`` is the only module that wires
``jobs`` and ``db`` in.
"""
