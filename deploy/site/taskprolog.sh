#!/bin/sh
# Slurm TaskProlog: every task of every job (the batch step and each srun task) gets the
# BLAS/OpenMP thread variables of its node type, its CPUs and its layout, with no change to
# job scripts. It prints "export NAME=VALUE" lines, which slurmstepd sets in the task.
#
# Install (see README.md beside this file):
#   blasprof presets write --out /shared/blasprof/presets   # a directory every node reads
#   copy this file where slurmd can run it, set PRESETS below to that directory, and put
#   TaskProlog=/path/to/taskprolog.sh in slurm.conf (then: scontrol reconfigure).
#
# What a job sets itself before a step starts (OMP_NUM_THREADS=...) is kept unless
# BLASPROF_OVERRIDE=1; a node without a preset gets one thread per core of its share.
PRESETS=/shared/blasprof/presets

[ -r "$PRESETS/blasprof.sh" ] || exit 0
BLASPROF_EMIT=sh
export BLASPROF_EMIT
exec /bin/sh "$PRESETS/blasprof.sh"
