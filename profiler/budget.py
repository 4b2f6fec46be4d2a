"""Moved to ``profiler.jobstart.budget``; this name stays for job scripts and pickles written before
the move (a pending Slurm job runs ``python -m profiler.budget``)."""

if __name__ == "__main__":
    import runpy

    runpy.run_module("profiler.jobstart.budget", run_name="__main__", alter_sys=True)
else:
    from profiler.jobstart.budget import *  # noqa: F403
    from profiler.jobstart.budget import __all__  # noqa: F401
