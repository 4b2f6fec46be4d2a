"""Measuring a node: what a calibration task does on the compute node.

``pipeline`` runs the stages in order (probe -> sweep -> layouts -> conditions -> derive ->
verify) and reports each node record, phase and point through callbacks; the task in
``jobs.task`` supplies them (checkpoint writes, a stop request) and owns signals.
"""
