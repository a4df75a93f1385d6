"""Datasets of images, with torchvision's signatures: ``graphc.datasets.MNIST(root, train=True, ...)``.

Files are read from disk and never downloaded; a missing or malformed file
raises DatasetError, naming the file and saying how to get the data.
"""
from .cifar import CIFAR10
from .digits import Digits
from .errors import DatasetError
from .folder import ImageFolder
from .mnist import MNIST, FashionMNIST

__all__ = ["CIFAR10", "DatasetError", "Digits", "FashionMNIST", "ImageFolder", "MNIST"]
