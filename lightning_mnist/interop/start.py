"""``lightning-mnist fit --init_weights``: start from a Keras tutorial weights file."""

from __future__ import annotations

import torch

from lightning_mnist.errors import UserError


def start_from_keras(network: torch.nn.Module, path: str) -> None:
    """``--init_weights``: the Keras file's weights replace the initialisation."""
    try:  # h5py comes with the [keras] extra; a plain fit does not need it
        from lightning_mnist.interop.keras_weights import start_from_keras_file
    except ImportError as e:
        raise UserError(f"--init_weights needs h5py ({e}): pip install h5py") from None
    start_from_keras_file(network, path)
