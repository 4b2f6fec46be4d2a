"""`blasprof status`: where the jobs of calibrations that outlived their command are.

`calibrate --no-wait` (or Ctrl-C while waiting on Slurm) leaves jobs recorded as pending,
and a calibrate that was killed leaves its calibration running; `blasprof collect`
(cli/collect.py) stores what they left.
"""

from profiler.cli import display
from profiler.cli._common import handle_errors, open_db
from profiler.cli.options import IdsArgument, JsonOption, check_ids


@handle_errors
def status_command(ids: IdsArgument = None, json_output: JsonOption = False) -> None:
    """Show where each job of a calibration is: pending, running, ended, stored.

    Examples:  blasprof status     blasprof status 12 13 --json
    """
    from profiler.calibration.recover import job_statuses

    docs = job_statuses(open_db(), check_ids(ids))
    if json_output:
        display.print_json(docs)
    else:
        display.print_status(docs)
