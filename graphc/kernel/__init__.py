"""The kernel IR: loop nests over buffers, lowered from a planned graph, consumed by backends."""
from .ir import Buffer, Kernel, Program
from .lower import lower_program
from .text import print_kernel, print_program

__all__ = ["Buffer", "Kernel", "Program", "lower_program", "print_kernel", "print_program"]
