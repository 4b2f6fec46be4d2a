"""`blasprof preset NODE_TYPE` and `blasprof presets write`: presets from stored calibrations."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from profiler.cli._common import TerminalSink, handle_errors, open_db
from profiler.cli.display import err
from profiler.cli.options import Format, NodeTypeArgument
from profiler.errors import NotFound, UsageError

if TYPE_CHECKING:
    from db import Database
    from profiler.choice.preset import Preset

presets_app = typer.Typer(help="Write presets for every node type.", no_args_is_help=True)


def _latest(database: "Database", node_type: str) -> "Preset":
    preset = database.latest_preset(node_type)
    if preset is None:
        known = ", ".join(database.node_type_names()) or "none yet"
        raise NotFound(
            f"no preset for node type {node_type!r}; known node types: {known} "
            "(run `blasprof calibrate --node-type NAME` first)"
        )
    return preset


@handle_errors
def preset_command(
    node_type: NodeTypeArgument,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.sh,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (atomically).")
    ] = None,
) -> None:
    """Print the latest preset of one node type (sh, csh, py, json or lua).

    The csh form runs the sh form of the presets directory ($BLASPROF_PRESETS), which
    `blasprof presets write` fills; `blasprof presets write` also writes the dispatchers
    that pick the node type at job start.

    Examples:

      blasprof preset amd-epyc-2c > preset.sh && . ./preset.sh

      blasprof preset typea --format py -o blas_preset_typea.py
    """
    from profiler.files import write_text
    from profiler.jobstart.forms import render
    from profiler.paths import presets_dir

    directory = str(presets_dir().expanduser().resolve())
    text = render(_latest(open_db(), node_type), format.value, directory)
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text(output, text, say=err)
        typer.echo(f"wrote {output}", err=True)


@presets_app.command("write")
@handle_errors
def presets_write_command(
    out: Annotated[
        str | None, typer.Option("--out", help="Directory (default: $BLASPROF_PRESETS).")
    ] = None,
) -> None:
    """Write every node type's latest preset in every form, plus the dispatchers.

    The dispatchers (blasprof.sh, blasprof.csh, blas_preset.py, blasprof.json and
    modulefiles/blasprof.lua) pick the node type at job start: BLASPROF_NODE_TYPE, else the
    Slurm partition, a feature the job asked for, the hostname, then the CPU. Node types
    that cannot be told apart are reported, with the one that wins. A node type whose
    stored preset cannot be used keeps the files of an earlier write, and the command
    exits 1.

    Example:  blasprof presets write --out /shared/blasprof/presets
    """
    from profiler.calibration.presets import write_presets
    from profiler.cli import display

    if out is not None and not out.strip():
        raise UsageError("--out: empty; give the presets directory, e.g. --out ./presets")
    database = open_db()
    if not database.node_type_names():
        raise NotFound("no presets stored yet; run `blasprof calibrate` first")
    written = write_presets(
        database, TerminalSink(show_progress=False), None, Path(out) if out is not None else None
    )
    paths = written.paths
    if not any(p.name == "blasprof.sh" for p in paths):
        raise NotFound("no presets stored yet; run `blasprof calibrate` first")
    typer.echo(f"wrote {len(paths)} files to {display.safe(paths[0].parent, markup=False)}")
    display.print_loading(paths[0].parent, paths)
    if written.unusable:
        raise typer.Exit(1)
