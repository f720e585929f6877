"""exitspace: hardware-algorithm co-design of early-exit neural networks on multi-core edge accelerators."""

__version__ = "0.1.0"
