"""Process-wide frontend state: grad mode, the active trace, the module call stack,
and where in the user's code an op was called from."""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import os
import sys
import threading

import graphc

from graphc.ir.graph import SourceLoc

_state = threading.local()

# Frames from these directories are graphc's own; the first frame outside them is the user's line.
_PACKAGE_DIRS = tuple(os.path.dirname(os.path.abspath(path)) + os.sep
                      for path in (__file__, graphc.__file__, importlib.util.find_spec("graphc.backends").origin))


def _get(name, default):
    if not hasattr(_state, name):
        setattr(_state, name, default() if callable(default) else default)
    return getattr(_state, name)


# -- grad mode ----------------------------------------------------------------------

def is_grad_enabled() -> bool:
    return _get("grad_enabled", True)


def _set_grad_mode(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode for a ``with`` block or a decorated function, and restores on exit the mode it found."""

    def __new__(cls, *args, **kwargs):
        # PyTorch lets no_grad, enable_grad and inference_mode decorate bare (``@no_grad``): the
        # decorated function arrives here in place of the arguments.
        if len(args) == 1 and callable(args[0]):
            return cls()(args[0])
        return super().__new__(cls)

    def _mode_inside(self, outside: bool) -> bool:
        raise NotImplementedError

    def __enter__(self) -> None:
        self._outside = is_grad_enabled()
        _set_grad_mode(self._mode_inside(self._outside))

    def __exit__(self, *exc) -> bool:
        _set_grad_mode(self._outside)
        return False

    def _recreate_cm(self):
        # ContextDecorator would enter this one instance on every call of the decorated function; a copy
        # per call keeps each call's outside mode its own, so recursion and threads restore the right one.
        return copy.copy(self)


class no_grad(_GradMode):
    """Stops ops from recording gradients: ``with no_grad():``, ``@no_grad()`` or ``@no_grad``."""

    def _mode_inside(self, outside: bool) -> bool:
        return False


class enable_grad(_GradMode):
    """Records gradients again, inside a ``no_grad`` block."""

    def _mode_inside(self, outside: bool) -> bool:
        return True


class inference_mode(_GradMode):
    """torch.inference_mode: like no_grad (graphc has no separate inference tensors to make);
    ``inference_mode(False)`` leaves the grad mode as it is."""

    def __init__(self, mode: bool = True):
        self.mode = bool(mode)

    def _mode_inside(self, outside: bool) -> bool:
        return outside and not self.mode


class set_grad_enabled(_GradMode):
    """PyTorch's three uses of one name: a plain call sets grad mode at once; as a context manager or
    a decorator it also restores, on exit, the mode it found."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._outside = is_grad_enabled()
        _set_grad_mode(self.mode)

    def __enter__(self) -> None:
        # The constructor found the outside mode before it set this one; entering again keeps that.
        _set_grad_mode(self.mode)

    def __call__(self, func):
        # As a decorator the mode holds only inside the function, so undo the constructor's setting.
        _set_grad_mode(self._outside)
        return super().__call__(func)

    def _recreate_cm(self):
        return set_grad_enabled(self.mode)      # finds the caller's mode at each call, then sets its own


# -- the active trace ---------------------------------------------------------------

def current_trace():
    """The TraceContext being recorded into, or None in eager mode."""
    stack = _get("traces", list)
    return stack[-1] if stack else None


@contextlib.contextmanager
def tracing(ctx):
    stack = _get("traces", list)
    stack.append(ctx)
    try:
        yield ctx
    finally:
        stack.pop()


# -- module call stack (for error messages) ---------------------------------------------

def module_stack() -> list:
    return _get("modules", list)


@contextlib.contextmanager
def calling_module(module):
    stack = module_stack()
    stack.append(module)
    try:
        yield
    finally:
        stack.pop()


def current_module_path() -> str | None:
    """``features.3 (Conv2d)`` for the innermost module being called, named from the outermost."""
    stack = module_stack()
    if not stack:
        return None
    root, inner = stack[0], stack[-1]
    if inner is root:
        return f"{type(inner).__name__}"
    for name, module in root.named_modules():
        if module is inner:
            return f"{name} ({type(inner).__name__})"
    return f"({type(inner).__name__})"


# -- source locations ---------------------------------------------------------------

def user_location() -> SourceLoc | None:
    """The first frame on the stack outside graphc's own code."""
    cwd = os.getcwd()
    frame = sys._getframe(1)
    while frame is not None:
        path = _user_path(frame.f_code.co_filename, cwd)
        if path is not None:
            return SourceLoc(path, frame.f_lineno)
        frame = frame.f_back
    return None


@functools.lru_cache(maxsize=None)
def _user_path(filename: str, cwd: str) -> str | None:
    """How a location in ``filename`` is shown (relative to ``cwd`` below it), or None for graphc's
    own code.  Remembered: tracing asks it of every frame below every op it records."""
    filename = os.path.normpath(os.path.join(cwd, filename))
    if filename.startswith(_PACKAGE_DIRS) or filename.startswith("<frozen"):
        return None
    try:
        rel = os.path.relpath(filename, cwd)
    except ValueError:
        return filename
    return rel if not rel.startswith("..") else filename


def error_context() -> str:
    """`` in features.3 (Conv2d) at train.py:41`` — appended to errors raised at the user."""
    parts = []
    path = current_module_path()
    if path:
        parts.append(f" in {path}")
    loc = user_location()
    if loc:
        parts.append(f" at {loc}")
    return "".join(parts)
