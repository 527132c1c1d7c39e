"""``kfw``: a thin Typer skin over the library; ``main`` turns a KfwError into one red line."""

from __future__ import annotations

import os
import sys

from kfw.core import budget

# torch-only command groups: their many small kernels want OpenMP's default spin-wait (with
# OMP_WAIT_POLICY=PASSIVE a bf16 GPT step on 2 cores took 140 ms instead of 99 ms), and they
# load no LightGBM or XGBoost that a passive policy protects
TORCH_ONLY = frozenset({"lm", "rl", "repro"})


def _command(args: list[str]) -> str | None:
    """The command group named on the line, past the global options (``--home PATH``)."""
    rest = iter(args)
    for arg in rest:
        if arg == "--home":
            next(rest, None)
        elif not arg.startswith("-"):
            return arg
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, map failures to one line and an exit code.

    Exit codes: 0 success, 1 an error in the input or set-up (one line; the traceback with
    ``--debug`` or ``KFW_DEBUG=1``), 2 a usage error, 3 the audit found a leak, 130 interrupted.
    """
    with budget.command():  # `kfw cv --time-limit` counts from here, start-up included
        _main(argv)


def _main(argv: list[str] | None) -> None:
    import typer
    from rich.markup import escape

    from kfw.cli.app import app
    from kfw.cli.common import console_err
    from kfw.core.registry import passive_openmp
    from kfw.errors import KfwError

    args = list(sys.argv[1:] if argv is None else argv)
    if _command(args) not in TORCH_ONLY:
        passive_openmp()  # before any model library loads OpenMP
    debug = "--debug" in args or os.environ.get("KFW_DEBUG", "") not in ("", "0")
    try:
        code = app(args=args, prog_name="kfw", standalone_mode=False)
    except KfwError as exc:
        if debug:
            console_err().print_exception()
        # escaped: a message quoting "[[models]]" or a value like "[/x]" is text, not markup
        console_err().print(
            f"[bold red]kfw: error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except typer.Abort:
        console_err().print("[yellow]kfw: interrupted[/]")
        sys.exit(130)
    except KeyboardInterrupt:
        console_err().print(
            "[yellow]kfw: interrupted; finished folds and checkpoints are kept: rerun the same command to resume[/]"
        )
        sys.exit(130)
    except typer.TyperException as exc:  # typer's own click: usage errors, bad parameters
        exc.show()
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if debug:
            raise
        console_err().print(
            f"[bold red]kfw: internal error:[/] {type(exc).__name__}: {escape(str(exc))} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
