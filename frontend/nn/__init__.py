"""graphc.nn: PyTorch's neural-network modules, functional layers and initialisers.

    import graphc.nn as nn
    import graphc.nn.functional as F
"""
from . import functional, init, utils
from .activation import (ELU, GELU, GLU, Hardswish, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU,
                         ReLU6, Sigmoid, SiLU, Softmax, Softplus, Tanh)
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, NLLLoss,
                   SmoothL1Loss)
from .module import Module, Parameter
from .normalization import GroupNorm, InstanceNorm1d, InstanceNorm2d, LayerNorm
from .pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .sparse import Embedding
from .upsampling import Upsample, UpsamplingBilinear2d, UpsamplingNearest2d

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Linear", "Identity", "Conv1d", "Conv2d",
           "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
           "InstanceNorm2d", "ReLU", "LeakyReLU", "ELU", "GELU", "SiLU", "Softplus", "Hardtanh", "PReLU", "Sigmoid",
           "ReLU6", "Hardswish", "Mish", "LogSigmoid", "GLU", "Tanh", "Softmax", "LogSoftmax", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "Embedding", "RNN", "LSTM",
           "GRU", "RNNCell", "LSTMCell", "GRUCell", "Flatten", "Unflatten", "Dropout", "Dropout2d", "Sequential",
           "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "BCELoss", "BCEWithLogitsLoss",
           "CrossEntropyLoss", "L1Loss", "MSELoss", "NLLLoss", "SmoothL1Loss", "HuberLoss", "KLDivLoss"]
