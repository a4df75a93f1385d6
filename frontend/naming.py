"""Names for the tensors a traced function reaches: ``netG.main.0.weight``, ``optD.state.netD.0.weight.exp_avg``.

A compiled function's graph inputs are named after the Python objects its code
refers to (closure variables and globals): modules by their parameter paths,
anything else (optimizers, generators, plain objects) by walking its
attributes, dicts and lists.
"""
from __future__ import annotations

import inspect
from typing import Iterator


def referenced_objects(fn) -> dict[str, object]:
    """The objects ``fn`` refers to by name: its ``self``, closure cells and the globals it uses."""
    objects: dict[str, object] = {}
    if inspect.ismethod(fn):
        objects["self"] = fn.__self__
        fn = fn.__func__
    code = getattr(fn, "__code__", None)
    if code is None:                     # a callable object: name its attributes
        return {"self": fn}
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            objects[name] = cell.cell_contents
        except ValueError:               # an empty cell
            pass
    for name in _global_names(code):
        if name in fn.__globals__:
            objects.setdefault(name, fn.__globals__[name])
    return objects


def _global_names(code) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from _global_names(const)


def tensor_names(objects: dict[str, object], max_depth: int = 4) -> dict[int, str]:
    """id(tensor) -> dotted name for every tensor reachable from ``objects``."""
    from .nn.module import Module
    from .tensor import Tensor
    from .trace import module_tensor_names

    names: dict[int, str] = {}
    seen: set[int] = set()

    def visit(obj, path: str, depth: int):
        if isinstance(obj, Tensor):
            names.setdefault(id(obj), path)
            return
        if id(obj) in seen or depth > max_depth:
            return
        if isinstance(obj, Module):
            seen.add(id(obj))
            for key, name in module_tensor_names(obj, prefix=f"{path}.").items():
                names.setdefault(key, name)
            return
        if isinstance(obj, dict):
            seen.add(id(obj))
            for key, value in obj.items():
                # A tensor key (an optimizer's state keyed by parameters) by its name; str() only
                # when it has none: printing a parameter formats all its values.
                key_name = names[id(key)] if isinstance(key, Tensor) and id(key) in names else str(key)
                visit(value, f"{path}.{key_name}", depth + 1)
        elif isinstance(obj, (list, tuple)):
            seen.add(id(obj))
            for i, value in enumerate(obj):
                visit(value, f"{path}.{i}", depth + 1)
        elif hasattr(obj, "__dict__") and not inspect.isroutine(obj) and not inspect.isclass(obj) \
                and not inspect.ismodule(obj):
            seen.add(id(obj))
            for key, value in vars(obj).items():
                visit(value, f"{path}.{key.lstrip('_')}", depth + 1)

    # Modules first, so that an optimizer's state keyed by parameters can use the parameters' names.
    ordered = sorted(objects.items(), key=lambda kv: not isinstance(kv[1], Module))
    for name, obj in ordered:
        visit(obj, name, 0)
    return names
