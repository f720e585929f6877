"""The driver: runs the stages below it for the CLI (and for scripts), one function per command.

:func:`~exitspace.flow.run.run_flow` (``exitspace run`` / ``search``), :mod:`exitspace.flow.evaluate`
(``exitspace evaluate``: one design from the command line), :func:`~exitspace.flow.finetune.verify_design`
(``exitspace finetune``), :mod:`exitspace.flow.export` (``exitspace export`` / ``infer``). Exit tables and
the workload of a run directory: :mod:`exitspace.flow.tables`.
It sits between search/report and cli: it may import any stage, and nothing but the CLI imports it.
"""
