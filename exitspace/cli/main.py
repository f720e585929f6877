"""Entry point: imports every ``exitspace.cli.*_cmds`` module so that it registers its commands."""

from __future__ import annotations

import importlib
import pkgutil

import exitspace.cli as cli_package
from exitspace.cli.app import app


def register_commands() -> None:
    """Import each command module of the cli package (modules named ``*_cmds``)."""
    for info in pkgutil.iter_modules(cli_package.__path__):
        if info.name.endswith("_cmds"):
            importlib.import_module(f"exitspace.cli.{info.name}")


def main() -> None:
    """Run the CLI."""
    register_commands()
    app()


if __name__ == "__main__":
    main()
