"""veclut: vector-LUT ternary and 2-bit kernels for a pinned, patched llama.cpp."""

__version__ = "0.1.0"
