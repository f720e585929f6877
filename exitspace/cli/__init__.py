"""Command-line interface: one typer app; each stage registers its commands in its own module."""
