"""Measuring a node: what a calibration task does on the compute node.

``probe`` and ``cpu`` say what node this is (its BLAS libraries are the family of
``profiler.blas``, which ``blasprof check`` uses too); ``timing times GEMM points in
interleaved rounds; ``sweep`` picks which points and ``layouts`` measures W processes x T
threads at once; ``conditions`` judges how busy the node was and ``stats`` holds the robust
statistics; ``verify`` checks a preset in a fresh process. ``pipeline`` runs the stages in
order (probe -> sweep -> layouts -> conditions -> derive -> verify) and reports each node
record, phase and point through callbacks; the task in ``jobs.task`` supplies them
(checkpoint writes, a stop request) and owns signals.
"""
