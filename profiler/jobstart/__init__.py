"""The one rule at job start, and what applies it.

``budget`` is the rule in Python (a job's CPUs, its processes, the thread variables), whose
functions the Python form embeds; ``detect`` says which node type a job runs on; ``forms``
renders the preset files (the sh form is the rule's second engine, which csh, the Slurm
TaskProlog and Lmod apply; the others carry only syntax); ``apply`` is env, run, wrap and
check from Python.
"""
