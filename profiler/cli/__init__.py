"""The blasprof command line: wires the sub-commands, nothing else.

Heavy modules (numpy, sqlalchemy, submitit) are imported inside the commands that need
them, so that ``blasprof --help`` stays fast.  The modules that define commands do not
use ``from __future__ import annotations``: typer would then compile every annotation
string again (about 4 ms of the 70 ms ``--help``); names only needed for type checking
are quoted instead.
"""

from typing import Annotated

import typer

from profiler.cli import (
    _common,
    calibrate,
    collect,
    compare,
    dbcmd,
    jobenv,
    nodes,
    plot,
    presets,
    probe,
    query,
    status,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="blasprof",
    help=(
        "Calibrate how many BLAS/OpenMP threads each node type should use, remember every "
        "calibration, and give batch jobs a matching environment preset.\n\n"
        "Start with:  blasprof calibrate --profile quick"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"blasprof {version('blasprof')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            print("blasprof (version unknown: the distribution is not installed)")
        raise typer.Exit(0)


@app.callback()
def _root(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="BLASPROF_DB",
            help="SQLAlchemy URL of the database (default: SQLite in $BLASPROF_HOME).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print blasprof's version and exit.",
        ),
    ] = False,
) -> None:
    _common.STATE.db_url = db


app.command("probe")(probe.probe_command)
app.command("calibrate")(calibrate.calibrate_command)
app.command("status")(status.status_command)
app.command("collect")(collect.collect_command)
app.command("list")(query.list_command)
app.command("show")(query.show_command)
app.command("best")(query.best_command)
app.command("compare")(compare.compare_command)
app.command("nodes")(nodes.nodes_command)
app.command("plot")(plot.plot_command)
app.command("preset")(presets.preset_command)
app.add_typer(presets.presets_app, name="presets")
app.command("env")(jobenv.env_command)
app.command(
    "run", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)(jobenv.run_command)
app.command("wrap")(jobenv.wrap_command)
app.command("check")(jobenv.check_command)
app.add_typer(dbcmd.db_app, name="db")


def main() -> None:
    """Console-script entry point: a wrong command line is one line on stderr and exit 2."""
    import sys

    try:
        code = app(prog_name="blasprof", standalone_mode=False)
    except Exception as exc:
        # typer's (vendored) click exceptions: recognised by shape, not by a private import
        format_message = getattr(exc, "format_message", None)
        if format_message is None or not isinstance(getattr(exc, "exit_code", None), int):
            raise
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "blasprof"
        message = " ".join(format_message().split())
        print(f"blasprof: error: {message} (see `{where} --help`)", file=sys.stderr)
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    sys.exit(code or 0)
