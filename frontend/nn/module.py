"""nn.Module and nn.Parameter, with PyTorch's bookkeeping.

A Module keeps its parameters, buffers and submodules in three ordered dicts
(registered through ``__setattr__`` as in PyTorch), so names, iteration order,
``state_dict`` keys and ``repr`` all match PyTorch's.  Tracing relies on two
facts set here: parameters carry ``_kind = "param"`` and buffers
``_kind = "buffer"``, which is how a trace tags them when it lifts them into
graph inputs; and a module called under a trace guards the graph on its
``training`` flag, so switching train/eval retraces.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Callable, Iterator

import numpy as np

from .. import dtypes as _dt
from ..autograd import RemovableHandle
from ..context import calling_module, current_trace, no_grad
from ..creation import zeros
from ..device import check_device
from ..tensor import Tensor, as_tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that is a module's learnable parameter; it shares ``data``'s storage."""

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            data = Tensor()
        data = as_tensor(data)
        if data.is_symbolic:
            raise TypeError("Parameter(data): data must be a concrete tensor, not one being traced")
        self._init(data._value, None, False)
        self._kind = "param"
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def _empty_parameter(shape, device=None, dtype=None) -> Parameter:
    """A zero-filled parameter for a layer to initialise (PyTorch's factory kwargs device/dtype)."""
    check_device(device)
    return Parameter(zeros(shape, dtype=dtype))


def _add_indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (PyTorch's ``_addindent``)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _check_member_name(kind: str, name) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')


def _add_hook(module, kind: str, entry: tuple, prepend: bool) -> RemovableHandle:
    # Kept in the instance's __dict__, made on first use: a module whose __init__ skipped
    # Module's still takes hooks, and a module without any pays one dict lookup a call.
    hooks = module.__dict__.setdefault(kind, [])
    hooks.insert(0, entry) if prepend else hooks.append(entry)
    return RemovableHandle(hooks, entry)


class Module:
    """Base class of every layer and model, as torch.nn.Module."""

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments; "
                            "Module.__init__ takes none")
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        ctx = current_trace()
        if ctx is not None:
            ctx.add_guard(lambda: self.training)
        with calling_module(self):
            for hook, with_kwargs in tuple(self.__dict__.get("_forward_pre_hooks", ())):
                result = hook(self, args, kwargs) if with_kwargs else hook(self, args)
                if result is not None and with_kwargs:
                    args, kwargs = result
                elif result is not None:
                    args = result if isinstance(result, tuple) else (result,)
            output = self.forward(*args, **kwargs)
            for hook, with_kwargs in tuple(self.__dict__.get("_forward_hooks", ())):
                result = hook(self, args, kwargs, output) if with_kwargs else hook(self, args, output)
                if result is not None:
                    output = result
            return output

    # -- hooks ------------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook: Callable, *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward (``hook(module, args, kwargs)`` with
        ``with_kwargs``); what it returns, if not None, replaces the arguments: a tuple, or one
        value (with ``with_kwargs``, an (args, kwargs) pair).  In a compiled function hooks run
        while it is traced, so what they compute is part of the graph."""
        return _add_hook(self, "_forward_pre_hooks", (hook, with_kwargs), prepend)

    def register_forward_hook(self, hook: Callable, *, prepend: bool = False,
                              with_kwargs: bool = False) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward (``hook(module, args, kwargs,
        output)`` with ``with_kwargs``); what it returns, if not None, replaces the output."""
        return _add_hook(self, "_forward_hooks", (hook, with_kwargs), prepend)

    # -- registration -------------------------------------------------------------------
    def _require_init(self) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign parameters, buffers or modules before Module.__init__() call")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as for ``bias=False``) under ``name``."""
        self._require_init()
        _check_member_name("parameter", name)
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                            "(graphc.nn.Parameter or None required)")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not a parameter (BatchNorm's running stats)."""
        self._require_init()
        _check_member_name("buffer", name)
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                            "(graphc Tensor or None required)")
        if tensor is not None:
            tensor._kind = "buffer"
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Add a child module under ``name``."""
        self._require_init()
        _check_member_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init()
            self._forget(name, keep=self._parameters)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                                "(graphc.nn.Parameter or None expected)")
            params[name] = None
        elif isinstance(value, Module):
            self._require_init()
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif name in self.__dict__.get("_modules", {}):
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module '{name}' "
                                "(graphc.nn.Module or None expected)")
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", {}):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                "(graphc Tensor or None expected)")
            if value is not None:
                value._kind = "buffer"
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict) -> None:
        """Drop ``name`` from every store but ``keep``, where it is about to be (re)stored in place."""
        self.__dict__.pop(name, None)
        for store in (self._parameters, self._buffers, self._modules):
            if store is not keep:
                store.pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: parameters, buffers and modules live in the dicts.
        for store in ("_parameters", "_buffers", "_modules"):
            members = self.__dict__.get(store)
            if members is not None and name in members:
                return members[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # -- traversal --------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, "Module"]]:
        """This module and every descendant, depth first, with dotted names ('' for this one)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            child_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, child_prefix, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """This module and every descendant, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        """(name, module) of the direct submodules, each once."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator["Module"]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool) -> Iterator[tuple[str, Tensor]]:
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse \
            else [(prefix, self)]
        seen = set()
        for module_prefix, module in modules:
            for name, tensor in getattr(module, store).items():
                if tensor is None or (remove_duplicate and id(tensor) in seen):
                    continue
                seen.add(id(tensor))
                yield module_prefix + ("." if module_prefix else "") + name, tensor

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs in PyTorch's order, each shared parameter once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter (what an optimizer is given), each shared one once."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, persistent or not."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def get_submodule(self, target: str) -> "Module":
        """The descendant at dotted path ``target`` ('' is this module)."""
        module = self
        for item in target.split(".") if target else []:
            child = module._modules.get(item)
            if child is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{item}`")
            module = child
        return module

    # -- modes and bulk changes -------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        """Set training mode here and in every descendant (Dropout, BatchNorm act on it)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> "Module":
        """``train(False)``: Dropout becomes the identity and BatchNorm uses its running stats."""
        return self.train(False)

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every descendant (children first) and then on this module."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's ``.grad`` (to None, or to zeros in place)."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                with no_grad():
                    param.grad.zero_()

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Switch gradient recording on or off for every parameter (e.g. to freeze a model)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    # -- device and dtype ------------------------------------------------------------------------
    def to(self, *args, **kwargs) -> "Module":
        """``to("cpu")`` and ``to(dtype)`` as PyTorch; graphc has no other device."""
        dtype = None
        for arg in (*args, kwargs.get("device"), kwargs.get("dtype")):
            if arg is None:
                continue
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) or type(arg).__name__ == "device":
                check_device(arg)
            else:
                dtype = _dt.as_dtype(arg)
        if dtype is not None:
            if not dtype.is_float:
                raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}")
            self._cast_floating(dtype)
        return self

    def cpu(self) -> "Module":
        return self

    def cuda(self, device=None) -> "Module":
        raise NotImplementedError("Module.cuda(): graphc modules live on the CPU; choose a compiled backend "
                                  "with graphc.compile(..., backend='opencl') to run on an accelerator")

    def float(self) -> "Module":
        return self.to(_dt.f32)

    def double(self) -> "Module":
        return self.to(_dt.f64)

    def half(self) -> "Module":
        raise NotImplementedError("Module.half(): float16 is not supported by graphc")

    def _cast_floating(self, dtype) -> None:
        """Convert every floating-point parameter, gradient and buffer to ``dtype``, keeping each
        tensor object (optimizers hold them), as PyTorch's ``param.data = param.data.to(dtype)``."""
        tensors = [*self.parameters(), *self.buffers()]
        tensors += [t.grad for t in tensors if t.grad is not None]
        for t in tensors:
            if t.dtype.is_float and t.dtype != dtype:
                t._value = t._value.astype(dtype.numpy)
                t._node = None        # the autograd input node cached for the old type

    # -- state dict ------------------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(key, tensor) of the state dict, not detached: own parameters, persistent buffers, children."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers_set:
                yield prefix + name, buffer
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_items(prefix + name + ".")

    def state_dict(self, *, destination: OrderedDict | None = None, prefix: str = "",
                   keep_vars: bool = False) -> OrderedDict:
        """Every parameter and persistent buffer by dotted name, detached (sharing storage)."""
        destination = OrderedDict() if destination is None else destination
        for key, tensor in self._state_items(prefix):
            destination[key] = tensor if keep_vars else tensor.detach()
        return destination

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False) -> IncompatibleKeys:
        """Copy values (graphc Tensors or numpy arrays) into this module's parameters and buffers.

        Everything is checked before anything is copied, so a failed load leaves
        the module as it was.
        """
        if assign:
            raise NotImplementedError("load_state_dict(assign=True) is not supported; values are always "
                                      "copied into the existing tensors")
        targets = OrderedDict(self._state_items())
        missing = [key for key in targets if key not in state_dict]
        unexpected = [key for key in state_dict if key not in targets]
        errors = []
        if strict and missing:
            errors.append("Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)))
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in unexpected)))
        sources = {}
        for key, target in targets.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, (Tensor, np.ndarray, np.generic)):
                errors.append(f'While copying the parameter named "{key}", expected a graphc Tensor or numpy '
                              f"array from checkpoint but received {type(value).__name__}")
                continue
            source = value.detach() if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))
            if tuple(source.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {list(source.shape)} from "
                              f"checkpoint, the shape in current model is {list(target.shape)}.")
                continue
            sources[key] = source
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for {}:\n\t{}".format(
                self._get_name(), "\n\t".join(errors)))
        with no_grad():
            for key, source in sources.items():
                targets[key].copy_(source)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ---------------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The layer's own settings, shown inside its repr (override in layers)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + _add_indent(repr(module), 2) for name, module in self._modules.items()]
        lines = extra_lines + child_lines
        text = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                text += extra_lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"
