"""Recurrent layers: RNN, LSTM and GRU (multi-layer, bidirectional), and their single-step cells.

A sequence is processed step by step in Python, so under a trace the loop is
unrolled over the (static) sequence length and a whole sequence model's
training step becomes one graph.  As PyTorch's CPU kernels do, each layer
first projects the whole input sequence with one matmul (x W_ih^T + b_ih)
and then runs the recurrence on the hidden state.  Parameter names, shapes,
order and initialisation (U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))) are
PyTorch's, so state dicts load across.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from graphc.errors import ShapeError

from ..context import error_context
from ..creation import zeros
from ..functions import cat, stack
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, _empty_parameter

__all__ = ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


class _Weights(NamedTuple):
    """One direction of one layer: input and hidden weights, their biases (or None), the LSTM projection."""
    w_ih: Tensor
    w_hh: Tensor
    b_ih: Tensor | None
    b_hh: Tensor | None
    w_hr: Tensor | None = None


# -- one time step ----------------------------------------------------------------------------------
# Each takes the input's projection x W_ih^T + b_ih (computed for the whole sequence at once) and the state.

def _rnn_step(projected: Tensor, h: Tensor, weights: _Weights, nonlinearity: str) -> Tensor:
    pre_activation = F.linear(h, weights.w_hh, weights.b_hh) + projected
    return pre_activation.tanh() if nonlinearity == "tanh" else pre_activation.relu()


def _lstm_step(projected: Tensor, state: tuple[Tensor, Tensor], weights: _Weights) -> tuple[Tensor, Tensor]:
    h, c = state
    gates = F.linear(h, weights.w_hh, weights.b_hh) + projected
    input_gate, forget_gate, cell_gate, output_gate = gates.chunk(4, -1)
    c = forget_gate.sigmoid() * c + input_gate.sigmoid() * cell_gate.tanh()
    h = output_gate.sigmoid() * c.tanh()
    if weights.w_hr is not None:
        h = F.linear(h, weights.w_hr)
    return h, c


def _gru_step(projected: Tensor, h: Tensor, weights: _Weights) -> Tensor:
    input_reset, input_update, input_new = projected.chunk(3, -1)
    hidden_reset, hidden_update, hidden_new = F.linear(h, weights.w_hh, weights.b_hh).chunk(3, -1)
    reset = (input_reset + hidden_reset).sigmoid()
    update = (input_update + hidden_update).sigmoid()
    new = (input_new + reset * hidden_new).tanh()
    return new + update * (h - new)       # (1 - update) * new + update * h, written as PyTorch computes it


def _step(mode: str, projected: Tensor, state, weights: _Weights):
    if mode == "LSTM":
        return _lstm_step(projected, state, weights)
    if mode == "GRU":
        return _gru_step(projected, state, weights)
    return _rnn_step(projected, state, weights, "tanh" if mode == "RNN_TANH" else "relu")


def _hidden(mode: str, state) -> Tensor:
    return state[0] if mode == "LSTM" else state


# -- the sequence layers ------------------------------------------------------------------------------

class RNNBase(Module):
    """What RNN, LSTM and GRU share: parameters, checks, and the layer-by-layer, step-by-step loop."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError("hidden_size and num_layers must be positive integers")
        if proj_size < 0 or (proj_size and proj_size >= hidden_size):
            raise ValueError("proj_size has to be a positive integer smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        directions = 2 if bidirectional else 1
        output_size = proj_size or hidden_size
        gate_size = _GATES[mode] * hidden_size
        for layer in range(num_layers):
            layer_input_size = input_size if layer == 0 else output_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {f"weight_ih_l{layer}{suffix}": (gate_size, layer_input_size),
                          f"weight_hh_l{layer}{suffix}": (gate_size, output_size)}
                if bias:
                    shapes[f"bias_ih_l{layer}{suffix}"] = (gate_size,)
                    shapes[f"bias_hh_l{layer}{suffix}"] = (gate_size,)
                if proj_size:
                    shapes[f"weight_hr_l{layer}{suffix}"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, name, _empty_parameter(shape, device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def _weights(self, layer: int, reverse: bool) -> _Weights:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        return _Weights(getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
                        getattr(self, "bias_ih" + suffix) if self.bias else None,
                        getattr(self, "bias_hh" + suffix) if self.bias else None,
                        getattr(self, "weight_hr" + suffix) if self.proj_size else None)

    def forward(self, input: Tensor, hx=None):
        """input (L, N, H_in) — (N, L, H_in) with batch_first — or unbatched (L, H_in); hx the initial
        state(s) (zeros when None).  Returns the last layer's outputs at every step and the final states."""
        if input.dim() not in (2, 3):
            raise ShapeError(f"{type(self).__name__}: Expected input to be 2D or 3D, got {input.dim()}D input of "
                             f"shape {list(input.shape)}" + error_context())
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{type(self).__name__}: input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {input.shape[-1]}" + error_context())
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        states = self._initial_states(hx, input.shape[1], batched, input)
        output, final = self._run_layers(input, states)
        if batched and self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
            final = [state.squeeze(1) for state in final]
        return output, (tuple(final) if self.mode == "LSTM" else final[0])

    def _state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """The shapes of the initial states, h (and c for an LSTM), batched."""
        layers = self.num_layers * (2 if self.bidirectional else 1)
        shapes = [(layers, batch, self.proj_size or self.hidden_size)]
        if self.mode == "LSTM":
            shapes.append((layers, batch, self.hidden_size))
        return shapes

    def _initial_states(self, hx, batch: int, batched: bool, input: Tensor) -> list[Tensor]:
        shapes = self._state_shapes(batch)
        if hx is None:
            return [zeros(shape, dtype=input.dtype) for shape in shapes]
        given = list(hx) if self.mode == "LSTM" else [hx]
        if len(given) != len(shapes):
            raise ShapeError(f"{type(self).__name__}: expected hx to be a tuple (h_0, c_0)" + error_context())
        states = []
        for state, shape in zip(given, shapes):
            expected = shape if batched else (shape[0], shape[2])
            if tuple(state.shape) != expected:
                raise ShapeError(f"{type(self).__name__}: Expected hidden size {list(expected)}, got "
                                 f"{list(state.shape)}" + error_context())
            states.append(state if batched else state.unsqueeze(1))
        return states

    def _run_layers(self, input: Tensor, states: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Every layer over the (L, N, features) sequence; returns the outputs and the stacked final states."""
        directions = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = [[] for _ in states]
        layer_input = input
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                state = tuple(s[index] for s in states) if self.mode == "LSTM" else states[0][index]
                output, state = self._run_direction(layer_input, state, self._weights(layer, direction == 1),
                                                    reverse=direction == 1)
                outputs.append(output)
                for final, value in zip(finals, state if self.mode == "LSTM" else (state,)):
                    final.append(value)
            layer_input = outputs[0] if directions == 1 else cat(outputs, 2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
        return layer_input, [stack(final) for final in finals]

    def _run_direction(self, input: Tensor, state, weights: _Weights, reverse: bool):
        """One direction of one layer over the whole sequence: the hidden state at every step, and the last state."""
        projected = F.linear(input, weights.w_ih, weights.b_ih)
        steps = range(input.shape[0] - 1, -1, -1) if reverse else range(input.shape[0])
        hidden = [None] * input.shape[0]
        for t in steps:
            state = _step(self.mode, projected[t], state, weights)
            hidden[t] = _hidden(self.mode, state)
        return stack(hidden), state

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), as torch.nn.RNN."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, 0, device, dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, as torch.nn.LSTM: returns output, (h_n, c_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)


class GRU(RNNBase):
    """Gated recurrent unit, as torch.nn.GRU."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)


# -- single steps -------------------------------------------------------------------------------------

class RNNCellBase(Module):
    """One time step of an RNN, LSTM or GRU, with parameters weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool, device, dtype):
        super().__init__()
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gate_size = _GATES[mode] * hidden_size
        self.weight_ih = _empty_parameter((gate_size, input_size), device, dtype)
        self.weight_hh = _empty_parameter((gate_size, hidden_size), device, dtype)
        if bias:
            self.bias_ih = _empty_parameter((gate_size,), device, dtype)
            self.bias_hh = _empty_parameter((gate_size,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def forward(self, input: Tensor, hx=None):
        """input (N, H_in) or (H_in,); hx the state(s) (zeros when None); returns the next state(s)."""
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ShapeError(f"{type(self).__name__}: expected input of shape [N, {self.input_size}] or "
                             f"[{self.input_size}], got {list(input.shape)}" + error_context())
        batched = input.dim() == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            blank = zeros(input.shape[0], self.hidden_size, dtype=input.dtype)
            hx = (blank, blank) if self.mode == "LSTM" else blank
        elif not batched:
            hx = tuple(h.unsqueeze(0) for h in hx) if self.mode == "LSTM" else hx.unsqueeze(0)
        weights = _Weights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        state = _step(self.mode, F.linear(input, self.weight_ih, self.bias_ih), hx, weights)
        if not batched:
            state = tuple(s.squeeze(0) for s in state) if self.mode == "LSTM" else state.squeeze(0)
        return state

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            text += ", bias=False"
        if self.mode == "RNN_RELU":
            text += ", nonlinearity=relu"
        return text


class RNNCell(RNNCellBase):
    """One step of an Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias,
                         device, dtype)
        self.nonlinearity = nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: (h, c) -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)


class GRUCell(RNNCellBase):
    """One GRU step: h -> h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)
