"""Running tasks: the executors (submitit backends in a registry), task specs, checkpoints,
signals, the owner watch and the job states.

``jobs.registry`` finds a backend by name; ``jobs.base`` says what every backend is;
``jobs.task`` is the task a job runs (the measuring itself is ``profiler.measure``);
``jobs.cluster`` reads the cluster file. Import the module you need: this package imports
nothing, so that ``import jobs.registry`` (for ``--help``) stays cheap.
"""
