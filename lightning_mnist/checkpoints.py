"""Open a checkpoint for a user, with one clear line when it is missing, corrupt or foreign."""

import pickle
import zipfile
from pathlib import Path

import torch

from lightning_mnist.errors import UserError
from lightning_mnist.system import MNISTClassifier


class CheckpointError(UserError):
    """The checkpoint cannot be used; the message names it and says why."""


def read_checkpoint(path: str | Path, resumable: bool = False) -> dict:
    """The checkpoint dict, or CheckpointError for a missing, unreadable or malformed file, or
    (``resumable``) one that holds weights only, not a training state to resume."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    _check_crcs(path)
    try:
        # weights_only: tensors and plain Python values only. A checkpoint may come from
        # anyone, and a full unpickler would run whatever code the file names.
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bit flips, not a torch file at all
        if isinstance(e, pickle.UnpicklingError) and "Weights only load failed" in str(e):
            raise CheckpointError(
                f"checkpoint {path} is not a plain checkpoint: refusing to unpickle code"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt or not a checkpoint ({e})") from None
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no Lightning state_dict")
    bad = [k for k, v in state.items() if v.is_floating_point() and not v.isfinite().all()]
    if bad:
        raise CheckpointError(f"checkpoint {path} has non-finite weights ({bad[0]}, ...)")
    if not isinstance(ckpt.get("hyper_parameters", {}), dict):
        raise CheckpointError(f"checkpoint {path}: its hyper_parameters are not a mapping")
    epoch = ckpt.get("epoch", 0)
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"checkpoint {path}: its epoch {str(epoch)[:40]!r} is not a count")
    if resumable and not all(k in ckpt for k in ("epoch", "loops", "optimizer_states")):
        raise CheckpointError(
            f"checkpoint {path} holds weights only, not a training state to resume; give it "
            "to validate/test/predict, or train anew"
        )
    return ckpt


def _check_crcs(path: Path) -> None:
    """torch's zip reader skips the CRCs; a flipped bit would load as a wrong weight."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: torch.load says what it is
    if damaged is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt ({damaged} fails its CRC check)")


def check_compatible(path: str | Path, model: torch.nn.Module, ckpt: dict | None = None) -> None:
    """Raise CheckpointError unless the weights of checkpoint ``path`` (``ckpt`` when already
    loaded) fit ``model`` exactly."""
    state, own = (ckpt or read_checkpoint(path))["state_dict"], model.state_dict()
    if set(state) != set(own):
        raise CheckpointError(
            f"checkpoint {path} is of another architecture (its layers differ from this model's)"
        )
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise CheckpointError(
                f"checkpoint {path} is of another architecture: {name} has shape "
                f"{tuple(tensor.shape)}, this model expects {tuple(own[name].shape)}; "
                "pass the same --model.* settings it was trained with"
            )


def load_classifier(path: str | Path) -> MNISTClassifier:
    """The trained classifier in eval mode, built from the checkpoint's own hyper-parameters."""
    ckpt = read_checkpoint(path)
    try:
        # LightningCLI adds private keys such as "_instantiator" to the saved hparams.
        hparams = {k: v for k, v in ckpt.get("hyper_parameters", {}).items() if k[:1] != "_"}
        model = MNISTClassifier(**hparams)
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {path} is not an MNISTClassifier ({first})") from None
    return model.eval()
