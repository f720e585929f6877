"""The typer app and the error handling every command shares."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, Sequence, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.text import Text

from exitspace.errors import ExitspaceError

try:  # typer >= 0.22 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click
    from click.exceptions import ClickException  # type: ignore[import-not-found,no-redef]


class _OneLineUsageErrors(typer.core.TyperGroup):
    """Usage errors (an unknown option, a value out of range, a missing argument) as one line on stderr with
    exit code 2, like every other input error, instead of click's usage box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # the help is already printed
                ctx = getattr(exc, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                err_console.print(Text.assemble(("error:", "bold red"), f" {exc.format_message().rstrip('.')}{hint}"),
                                  highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="exitspace",
    cls=_OneLineUsageErrors,
    help="Hardware-algorithm co-design of early-exit neural networks on multi-core edge accelerators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# markup off: messages, paths and names are printed as written ("[accuracy, elp]" or "[/bold]" in them is text)
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def console_at_least(width: int) -> Console:
    """The standard output console, or one ``width`` columns wide where it is narrower (or piped): tables
    are never squashed."""
    return console if console.width >= width else Console(width=width, markup=False)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn an ExitspaceError into a one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ExitspaceError as exc:
            err_console.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:  # a training run's TrainingStopped says where it stopped
            err_console.print(str(exc) or "interrupted; what was computed so far is kept in the run directory")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
