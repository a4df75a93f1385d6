"""The Optimizer base class: parameter groups, per-parameter state, state dicts.

Optimizers are written to be traced as well as run: a compiled training step
records ``opt.zero_grad(); loss.backward(); opt.step()`` into one graph.  So
the update is made of in-place tensor ops under ``no_grad`` (under a trace
they become write-backs), the state tensors are concrete even when created
during a trace (the trace lifts them as optimizer-state inputs), and the
learning rate each group uses is a concrete 0-d tensor refreshed from
``group['lr']`` before every step, so that a scheduler's change reaches a
graph compiled earlier.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import numpy as np

from graphc.errors import ShapeError

from ..context import current_trace, enable_grad, no_grad
from ..tensor import Tensor


def state_tensor(value: np.ndarray) -> Tensor:
    """A concrete tensor of optimizer state; a trace lifts it as a 'state' input, even if created mid-trace."""
    tensor = Tensor._wrap(value)
    tensor._kind = "state"
    return tensor


class Optimizer:
    """Base class of optimizers, as torch.optim.Optimizer.

    Subclasses pass their hyperparameter ``defaults`` and implement
    ``_update_group(group, lr)``, which updates the group's parameters in place
    (called under ``no_grad``; ``lr`` is the group's learning-rate tensor).
    """

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state: defaultdict = defaultdict(dict)
        self.param_groups: list[dict] = []
        # One 0-d float32 tensor per group holding group['lr'], read by the update instead of the Python float.
        self._lr_tensors: list[Tensor] = []
        # The same for other hyperparameters that schedulers change (OneCycleLR cycles momentum and beta1):
        # per group, name -> tensor, each computed from the group by ``_hyperparameter_values[name]``.
        self._hyperparameter_tensors: list[dict[str, Tensor]] = []
        self._hyperparameter_values: dict[str, Callable[[dict], float]] = {}
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            f"but got {_type_name(params)}")
        param_groups = list(params)
        if not param_groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    # -- parameter groups --------------------------------------------------------------------
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_type_name(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering "
                            "of tensors in sets will change between runs. Please use a list instead.")
        else:
            params = list(params)
        for param in params:
            if not isinstance(param, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {_type_name(param)}")
            if not param.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        param_group["params"] = params
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in future, this will "
                          "cause an error; see github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
        existing = {id(p) for group in self.param_groups for p in group["params"]}
        if not existing.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)
        self._lr_tensors.append(state_tensor(np.array(param_group["lr"], np.float32)))
        self._hyperparameter_tensors.append({})

    # -- gradients and the step ----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None       # under a trace this clears the trace's record of the grad
                else:
                    with no_grad():
                        p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()``'s loss if a closure is given."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        ctx = current_trace()
        if ctx is not None:
            # Read now, before this step creates any state: a graph traced before a parameter had state
            # (SGD's first step copies the gradient into the momentum buffer) must not serve later steps.
            ctx.add_guard(self._state_layout)
            ctx.add_prepare_hook(self._sync_lr_tensors)
        self._sync_lr_tensors()
        # Traced, the state this step creates is a side effect of the trace; eager, a failure part-way is undone.
        transaction = self._traced_state_changes(ctx) if ctx is not None else self._all_or_nothing()
        with transaction, no_grad():
            for group, lr in zip(self.param_groups, self._lr_tensors):
                self._update_group(group, lr)
        return loss

    @contextlib.contextmanager
    def _traced_state_changes(self, ctx):
        """Record the state this traced step creates as a side effect of the trace: the trace takes it
        back when it ends, and the compiled step makes it again once its first run succeeds."""
        before = self._state_entries()
        try:
            yield
        finally:
            ctx.add_side_effect(undo=functools.partial(self._restore_entries, before),
                                redo=functools.partial(self._restore_entries, self._state_entries()))

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """An eager step that fails part-way puts back every parameter and state value it changed."""
        before = self._state_entries()
        tensors = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        tensors += [value for entries in before.values() for value in entries.values() if isinstance(value, Tensor)]
        saved = [(tensor, tensor._value.copy()) for tensor in tensors]
        try:
            yield
        except BaseException:
            self._restore_entries(before)
            for tensor, value in saved:
                np.copyto(tensor._value, value)
            raise

    def _state_entries(self) -> dict:
        """Which state each parameter has (the dicts copied, not the tensors), for ``_restore_entries``."""
        return {p: dict(entries) for p, entries in self.state.items()}

    def _restore_entries(self, entries: dict) -> None:
        """Make ``self.state`` hold ``entries`` again, keeping its dict objects (callers may hold them)."""
        for p in [p for p in self.state if p not in entries]:
            del self.state[p]
        for p, values in entries.items():
            self.state[p].clear()
            self.state[p].update(values)

    def _update_group(self, group: dict, lr: Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement its update")

    @staticmethod
    def _gradients(group: dict):
        """(parameter, gradient) for each parameter of ``group`` that has a gradient, the gradient
        negated when the group maximizes; parameters without one are skipped, as in PyTorch."""
        for p in group["params"]:
            if p.grad is not None:
                yield p, (-p.grad if group["maximize"] else p.grad)

    def _sync_lr_tensors(self) -> None:
        """Copy each group's current ``lr`` and scheduled hyperparameters (which schedulers change) into
        the tensors the update reads."""
        for group, lr in zip(self.param_groups, self._lr_tensors):
            lr._value[...] = float(group["lr"])
        for group, tensors in zip(self.param_groups, self._hyperparameter_tensors):
            for name, tensor in tensors.items():
                tensor._value[...] = self._hyperparameter_values[name](group)

    def _hyperparameter(self, group: dict, name: str, value_of: Callable[[dict], float] | None = None) -> Tensor:
        """A 0-d float32 tensor holding ``value_of(group)`` (default: ``group[name]``), refreshed before every
        step like the learning rate, for a hyperparameter that a scheduler may change (momentum, beta1):
        a compiled step reads it at run time instead of keeping the value it was traced with."""
        value_of = self._hyperparameter_values.setdefault(name, value_of or (lambda g: g[name]))
        index = next(i for i, g in enumerate(self.param_groups) if g is group)
        tensors = self._hyperparameter_tensors[index]
        if name not in tensors:
            tensors[name] = state_tensor(np.array(value_of(group), np.float32))
        return tensors[name]

    def _state_layout(self) -> tuple:
        """Which state each parameter has, in order: what a traced step was specialised on."""
        return tuple(tuple(self.state.get(p, ())) for group in self.param_groups for p in group["params"])

    # -- state dicts -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """PyTorch's layout: ``state`` keyed by parameter index, ``param_groups`` listing indices as 'params'.

        The state tensors are the optimizer's own (not copies), as in PyTorch.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed = {key: value for key, value in group.items() if key != "params"}
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: values for p, values in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a ``state_dict()`` from an optimizer over parameters of the same shapes, group by group.

        Values are copied into this optimizer's existing state tensors (new ones are
        made only for state it lacks), so a compiled step that reads them stays valid
        and two optimizers never share a tensor.  Everything is checked before
        anything changes: a state dict that does not fit raises ValueError (a
        graphc.ShapeError for a state value, naming the parameter and the key) and
        leaves this optimizer as it was.
        """
        saved_groups = self._checked_groups(state_dict)
        param_of = {saved_index: p for group, saved in zip(self.param_groups, saved_groups)
                    for saved_index, p in zip(saved["params"], group["params"])}
        loads = []
        for index, values in state_dict["state"].items():
            if index not in param_of:
                raise ValueError(f"loaded state dict has state for parameter {index!r}, which none of its "
                                 "param_groups lists")
            if not isinstance(values, dict):
                raise ShapeError(f"loaded optimizer state of parameter {index} is a {type(values).__name__}, "
                                 "not a dict from names to tensors")
            param = param_of[index]
            current = self.state.get(param, {})
            loads += [_StateLoad(param, name, current.get(name), _state_array(value, param, index, name))
                      for name, value in values.items()]
        state: defaultdict = defaultdict(dict)
        for load in loads:
            state[load.param][load.name] = load.apply()
        self.state = state
        self.param_groups = [{**saved, "params": group["params"]}
                             for group, saved in zip(self.param_groups, saved_groups)]

    def _checked_groups(self, state_dict) -> list[dict]:
        """The state dict's param_groups, checked against this optimizer's groups and hyperparameters."""
        if not (isinstance(state_dict, dict) and isinstance(state_dict.get("state"), dict)
                and isinstance(state_dict.get("param_groups"), list)):
            raise ValueError("loaded state dict must be a dict holding 'state' (a dict) and 'param_groups' (a list), "
                             f"as Optimizer.state_dict() makes; got {_summary(state_dict)}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for number, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if not (isinstance(saved, dict) and isinstance(saved.get("params"), list)):
                raise ValueError(f"loaded state dict's param_groups[{number}] must be a dict with a 'params' list; "
                                 f"got {_summary(saved)}")
            if len(group["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
            for name, default in self.defaults.items():
                if name in saved and not _fits_hyperparameter(saved[name], default):
                    raise ValueError(f"loaded state dict's param_groups[{number}]['{name}'] is {saved[name]!r} "
                                     f"({type(saved[name]).__name__}); expected a value like {default!r}")
        return saved_groups


def _fits_hyperparameter(value, default) -> bool:
    """Whether a loaded hyperparameter has the kind of its default (defaults of None take anything)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, (int, float)):
        return _is_real(value)
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and len(value) == len(default) and all(map(_is_real, value))
    return True


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _summary(value) -> str:
    return f"{type(value).__name__} {value!r:.60}"


@dataclass
class _StateLoad:
    """One checked state entry waiting to be loaded: into ``existing`` where it fits, else a new tensor."""
    param: Tensor
    name: str
    existing: Tensor | None
    array: np.ndarray

    def apply(self) -> Tensor:
        if self.existing is not None and self.existing.shape == self.array.shape:
            np.copyto(self.existing._value, self.array, casting="unsafe")
            return self.existing
        # 'step' stays float32, as PyTorch keeps it; other state takes its parameter's dtype.
        dtype = np.float32 if self.name == "step" else self.param.dtype.numpy
        return state_tensor(np.array(self.array, dtype=dtype))


def _state_array(value, param: Tensor, index, name: str) -> np.ndarray:
    """A loaded state value as an array, checked: a tensor of numbers shaped like its parameter
    ('step': one number, which older PyTorch checkpoints store as a plain int)."""
    what = f"loaded optimizer state '{name}' of parameter {index} (shape {list(param.shape)})"
    if name == "step" and _is_real(value):
        return np.array(value, np.float32)
    if not isinstance(value, (Tensor, np.ndarray)):
        raise ShapeError(f"{what} is a {type(value).__name__} ({value!r:.40}); expected a tensor")
    array = value.detach().numpy() if isinstance(value, Tensor) else value
    if array.dtype.kind not in "iuf":
        raise ShapeError(f"{what} has dtype {array.dtype}; expected a tensor of numbers")
    if name == "step":
        if array.size != 1:
            raise ShapeError(f"{what} has shape {list(array.shape)}; expected a single number")
        return array.reshape(())
    if array.shape != tuple(param.shape):
        raise ShapeError(f"{what} has shape {list(array.shape)}, but its parameter has shape {list(param.shape)}")
    return array


def _type_name(value) -> str:
    module = type(value).__module__
    return type(value).__qualname__ if module == "builtins" else f"{module}.{type(value).__qualname__}"
