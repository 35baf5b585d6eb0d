"""``lightning-mnist fit --init_weights``: start from a Keras tutorial weights file."""

import torch

from lightning_mnist.errors import UserError
from lightning_mnist.model import TutorialCNN


def start_from_keras(network: torch.nn.Module, path: str) -> None:
    """The Keras file's weights (read with h5py: no pickle, no code) replace the initialisation."""
    try:  # h5py comes with the [keras] extra; a plain fit does not need it
        from lightning_mnist.interop.keras_weights import load_keras_weights
    except ImportError as e:
        raise UserError(f"--init_weights needs h5py ({e}): pip install h5py") from None
    if not isinstance(network, TutorialCNN):
        name = type(network).__name__
        raise UserError(f"--init_weights {path}: for the tutorial network only, not {name}")
    try:
        load_keras_weights(network, path)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--init_weights: {e}") from None
