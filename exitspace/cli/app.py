"""The typer app and the error handling every command shares."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

import typer
from rich.console import Console

from exitspace.errors import ExitspaceError

app = typer.Typer(
    name="exitspace",
    help="Hardware-algorithm co-design of early-exit neural networks on multi-core edge accelerators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Turn an ExitspaceError into a one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ExitspaceError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:  # a training run's TrainingStopped says where it stopped
            err_console.print(str(exc) or "interrupted; what was computed so far is kept in the run directory")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
