"""graphc.nn: PyTorch's neural-network modules, functional layers and initialisers.

    import graphc.nn as nn
    import graphc.nn.functional as F
"""
from . import functional, init
from .activation import LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import ModuleDict, ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .flatten import Flatten, Unflatten
from .linear import Identity, Linear
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .module import Module, Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "Identity", "Conv2d", "ConvTranspose2d",
           "BatchNorm1d", "BatchNorm2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax",
           "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Unflatten", "Dropout", "Dropout2d",
           "Sequential", "ModuleList", "ModuleDict", "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "L1Loss",
           "MSELoss", "NLLLoss"]
