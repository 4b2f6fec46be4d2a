"""`blasprof collect`: store what calibrations that outlived their command left.

`calibrate --no-wait` (or Ctrl-C while waiting on Slurm) leaves jobs recorded as pending,
and a calibrate that was killed or could not reach the database leaves its calibration
running. `collect` stores the results of those that ended (for a local calibration whose
blasprof is gone, from its job folder) and finishes each calibration whose jobs have all
ended. Storing is claimed in the database, so several `collect` runs at once never store a
result twice. `blasprof status` (cli/status.py) says where their jobs are.
"""

import typer

from profiler.cli import display
from profiler.cli._common import TerminalSink, handle_errors, open_db
from profiler.cli.options import IdsArgument, JsonOption, check_ids


@handle_errors
def collect_command(ids: IdsArgument = None, json_output: JsonOption = False) -> None:
    """Store the results of jobs that have ended; finish calibrations whose jobs all ended.

    Also stores what a local calibration measured when its blasprof was killed or could
    not store it (from its job folder, once that blasprof is gone). Safe to run again, and
    from several shells at once: a result is stored once. Exits 1, as `calibrate` does, when a
    calibration it finished gave no preset or its preset was not adopted (one that did not
    complete is said, but storing what it left is this command's work, and that succeeded).

    Examples:  blasprof collect     blasprof collect 12 --json
    """
    from profiler.calibration.outcome import ending
    from profiler.calibration.recover import collect

    docs, finished = collect(open_db(), check_ids(ids), TerminalSink(show_progress=False))
    if json_output:
        display.print_json(docs)
    else:
        display.print_collected(docs)
    ended = ending(finished, incomplete_fails=False)
    for line in ended.lines:
        display.err(line)
    if ended.code:
        raise typer.Exit(ended.code)
