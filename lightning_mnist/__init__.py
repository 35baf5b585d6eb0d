"""The Keras MNIST CNN tutorial, ported to PyTorch Lightning."""

__version__ = "0.1.0"
