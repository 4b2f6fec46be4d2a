"""`blasprof env`, `run`, `wrap` and `check`: a preset in a job, from the command line."""

import os
import stat
import sys
from pathlib import Path
from typing import Annotated

import typer

from profiler.cli import display
from profiler.cli._common import handle_errors
from profiler.cli.options import JsonOption, NodeTypeOption, Shell, WorkersOption


@handle_errors
def env_command(
    node_type: NodeTypeOption = None,
    workers: WorkersOption = None,
    shell: Annotated[Shell, typer.Option("--shell", help="sh (bash, zsh, ksh) or csh.")] = Shell.sh,
    json_output: JsonOption = False,
) -> None:
    """Print the lines that give this job its preset, for eval.

    Reads the presets directory ($BLASPROF_PRESETS) that `blasprof presets write` filled,
    and applies the same rule as the files there. Threads per process = the preset's count
    for the size class (BLASPROF_SIZE_CLASS, default the largest) and the job layout, never
    more than the process's share: the job's CPUs on this node (BLASPROF_CPUS, else
    SLURM_CPUS_ON_NODE, else the affinity mask capped by the cgroup quota) divided by the
    processes sharing them (the launcher's local size: srun, Open MPI, MPICH, Intel MPI,
    PMIx; else BLASPROF_WORKERS, else 1), and at most SLURM_CPUS_PER_TASK. --workers N
    counts the processes this command runs: under a launcher each of its tasks runs N, so N
    times the launcher's count share the node (as blas_preset.threads(workers=N) does). A
    thread variable set before the preset is kept unless BLASPROF_OVERRIDE=1; BLASPROF_PRESET
    records the node type, size class and count. A preset of several BLAS libraries sets
    each library's own variable from its own count (BLIS_NUM_THREADS, MKL_NUM_THREADS) and
    OMP_NUM_THREADS from a library that obeys it first (an OpenMP OpenBLAS), else from the
    default (numpy's); BLASPROF_PRESET then adds label=count for each. OMP_THREAD_LIMIT is
    never set. The node type is BLASPROF_NODE_TYPE, else
    the Slurm partition, a feature the job asked for, the hostname, then the CPU; a node
    without a preset gets one thread per core of its share.

    Examples:

      eval "$(blasprof env)"

      eval "$(blasprof env --workers 4)"           # four processes will share the CPUs

      eval `blasprof env --shell csh`
    """
    from profiler.jobstart.apply import environment, shell_lines

    done = environment(os.environ, node_type, workers)
    if json_output:
        display.print_json(done)
        return
    display.print_notes(done["notes"])
    for line in shell_lines(done, shell.value):
        typer.echo(line)


@handle_errors
def run_command(
    command: Annotated[
        list[str], typer.Argument(help="The command and its arguments, after --.", metavar="CMD...")
    ],
    node_type: NodeTypeOption = None,
    workers: WorkersOption = None,
) -> None:
    """Run a command under this job's preset.

    Examples:

      blasprof run -- python train.py

      srun -n 4 blasprof run -- python solve.py     # each task gets its share

      blasprof run --workers 8 -- python pool.py    # a pool of 8 processes shares the CPUs

      srun -n 2 blasprof run --workers 4 -- python pool.py   # 2 x 4 processes share them
    """
    from profiler.jobstart.apply import environment, exec_with, run_argv

    run_argv(command)
    done = environment(os.environ, node_type, workers)
    display.print_notes(done["notes"])
    sys.stdout.flush()
    exec_with(done, command)


@handle_errors
def wrap_command(
    script: Annotated[Path, typer.Argument(help="A job script.", dir_okay=False)],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of SCRIPT ('-': stdout)."),
    ] = None,
) -> None:
    """Add the line that loads the presets to a job script, after its #SBATCH header.

    Run it again and nothing changes. A csh script (#!/bin/csh, tcsh) gets the csh form;
    a script of another interpreter (#!/usr/bin/env python, perl) is refused, unchanged.

    Examples:

      blasprof wrap job.sh

      blasprof wrap job.sh -o job-with-presets.sh
    """
    from profiler.errors import UsageError
    from profiler.files import write_text
    from profiler.jobstart.apply import wrap

    try:
        info = script.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{script}: not a regular file; give a job script")
        if info.st_size > _MAX_SCRIPT_BYTES:
            raise UsageError(
                f"{script}: {info.st_size:,} bytes is more than a job script "
                f"({_MAX_SCRIPT_BYTES:,} at most)"
            )
        text = script.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {script}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        wrapped = wrap(text)
    except UsageError as exc:
        raise UsageError(f"{script}: {exc}") from None
    if output is not None and str(output) == "-":
        typer.echo(wrapped, nl=False)
        return
    target = output or script
    if wrapped == text and target == script:
        display.err(f"{script} loads the presets already; nothing changed")
        return
    mode = script.stat().st_mode & 0o777
    write_text(target, wrapped, mode=mode, say=display.err)
    display.err(f"wrote {target}")


#: a job script larger than this is not a job script (and is not read into memory)
_MAX_SCRIPT_BYTES = 16 * 2**20


@handle_errors
def check_command(
    python: Annotated[
        str, typer.Option("--python", help="The Python the job runs (default: blasprof's).")
    ] = sys.executable,
    json_output: JsonOption = False,
) -> None:
    """Inside a job: does each BLAS library run the preset's thread count? Exit 1 if not.

    Every library a fresh Python loads with numpy, and every library the preset set,
    runs a GEMM with this environment; the threads that did the work are counted.

    Examples:

      . /shared/blasprof/presets/blasprof.sh && blasprof check

      srun -n 2 blasprof check --json
    """
    from profiler.jobstart.check import took_effect

    ok, libraries, why = took_effect(os.environ, python)
    if json_output:
        display.print_json(
            {
                "took_effect": ok,
                "preset": os.environ.get("BLASPROF_PRESET"),
                "reason": why or None,
                "libraries": libraries,
            }
        )
    else:
        display.print_took_effect(ok, libraries, why, os.environ.get("BLASPROF_PRESET"))
    if not ok:
        raise typer.Exit(1)
