"""Move weights between the Keras models and ``TutorialCNN`` / ``ImprovedCNN``, with h5py only.

Reads what Keras 3.15 writes: ``.weights.h5`` (``layers/<name>/vars/0`` kernel, ``/1`` bias),
``.keras`` (a zip holding that file) and the legacy ``.h5`` (``layer_names``, ``weight_names``).
Keras is channels-last (docs/parity.md #5): a Conv2D kernel is HWIO, torch's OIHW; a Dense kernel
is (in, out). Keras's Flatten reads (H, W, C), as ``TutorialCNN`` does: fc1 needs no permutation.
"""

import io
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from lightning_mnist.atomic import write_atomic
from lightning_mnist.model import TutorialCNN

# Weighted layers of the tutorial model, in model order: (torch module name, Keras group).
WEIGHTED_LAYERS = (("conv", "conv2d"), ("fc1", "dense"), ("fc2", "dense_1"))
# Weightless Keras layers, written only so the file mirrors what Keras itself saves.
WEIGHTLESS_LAYERS = (("pool", "max_pooling2d"), ("flatten", "flatten"), ("dropout", "dropout"))


def to_keras_layout(tensor: torch.Tensor) -> np.ndarray:
    """A float32 copy of a torch weight (or its gradient) in Keras layout: a conv weight OIHW
    becomes HWIO, a Linear weight (out, in) becomes (in, out), a vector stays as it is."""
    array = tensor.detach().to("cpu", torch.float32).numpy()
    array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array.T
    return np.array(array, order="C")  # a copy: .numpy() shares the tensor's memory


def from_keras_layout(array: np.ndarray) -> torch.Tensor:
    """The inverse of :func:`to_keras_layout`, as a float32 tensor."""
    array = np.asarray(array, dtype=np.float32)
    array = array.transpose(3, 2, 0, 1) if array.ndim == 4 else array.T
    return torch.from_numpy(np.ascontiguousarray(array))


def _layer_tensors(model: nn.Module) -> dict[str, tuple[torch.Tensor, ...]]:
    """Each weighted layer's tensors by name, in model order and Keras ``get_weights()`` order."""
    layers = {}
    for path, m in model.named_modules():
        name = path.rsplit(".", 1)[-1]  # ImprovedCNN's features.conv1 is Keras's conv1
        if isinstance(m, nn.BatchNorm2d):
            layers[name] = (m.weight, m.bias, m.running_mean, m.running_var)
        elif isinstance(m, nn.Conv2d | nn.Linear):
            layers[name] = (m.weight,) if m.bias is None else (m.weight, m.bias)
    return layers


def keras_layout_state(model: nn.Module) -> dict[str, tuple[np.ndarray, ...]]:
    """The model's weights in Keras layout by layer name, for Keras's ``set_weights``."""
    return {name: tuple(map(to_keras_layout, t)) for name, t in _layer_tensors(model).items()}


def load_keras_state(model: nn.Module, arrays: dict, source: str = "weights") -> None:
    """Copy Keras-layout arrays by layer name into the model, in place; ``ValueError`` (and
    nothing changed) when a layer is missing or a shape differs."""
    layers = _layer_tensors(model)
    for name, want in keras_layout_state(model).items():
        got = [np.shape(a) for a in arrays[name]] if name in arrays else None
        if got != [a.shape for a in want]:
            raise ValueError(
                f"{source}: layer {name} has arrays {got}, but this {type(model).__name__} "
                f"needs {[a.shape for a in want]}; pass weights saved from the same "
                "architecture at the same sizes (filters/hidden/num_classes)"
            )
    with torch.no_grad():
        for name, tensors in layers.items():
            for tensor, array in zip(tensors, arrays[name], strict=True):
                tensor.copy_(from_keras_layout(array))


def _weighted_layers_v3(layers: h5py.Group) -> list[list[np.ndarray]]:
    # Keras 3 stores no cross-class order; in a Sequential CNN the conv layers (4-D kernels)
    # come before the dense layers, and each class is numbered in model order ("dense",
    # "dense_1", ..., "dense_10": sorted by number, not as text).
    found = []
    for group_name in layers:
        vars_group = layers[group_name].get("vars")
        if vars_group is not None and len(vars_group):
            arrays = [vars_group[str(i)][()] for i in range(len(vars_group))]
            base, _, number = group_name.rpartition("_")
            order = (base, int(number)) if number.isdecimal() else (group_name, 0)
            found.append((-arrays[0].ndim, order, arrays))
    return [arrays for *_, arrays in sorted(found, key=lambda item: item[:2])]


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_h5(f: h5py.File) -> list[list[np.ndarray]]:
    """Each weighted layer's arrays, kernel first, in model order."""
    if "layers" in f:
        return _weighted_layers_v3(f["layers"])
    if "model_weights" not in f and "layer_names" not in f.attrs:
        raise ValueError("no 'layers' or 'model_weights' group")
    root = f.get("model_weights", f)  # a Keras 2 weights-only file: the root
    groups = [root[_str(name)] for name in root.attrs["layer_names"]]
    named = [(g, [_str(n) for n in g.attrs.get("weight_names", [])]) for g in groups]
    return [[g[n][()] for n in names] for g, names in named if names]  # weighted layers only


def read_keras_weights(path: str | Path) -> dict[str, tuple[np.ndarray, ...]]:
    """The tutorial model's weights by layer name from a ``.keras``, ``.h5`` or ``.weights.h5``
    file (known by content, not name); ``ValueError`` for another file or architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Keras file")
    try:
        payload: Path | io.BytesIO = path
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                payload = io.BytesIO(archive.read("model.weights.h5"))
        with h5py.File(payload, "r") as f:
            layers = _read_h5(f)
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(
            f"{path}: not a Keras .keras/.h5/.weights.h5 file ({e}); save it with "
            "model.save('x.keras') or model.save_weights('x.weights.h5')"
        ) from None
    if [(len(arrays), arrays[0].ndim) for arrays in layers] != [(2, 4), (2, 2), (2, 2)]:
        kernels = [arrays[0].shape for arrays in layers]
        raise ValueError(
            f"{path}: expected the tutorial's 3 weighted layers Conv2D, Dense, Dense (kernel and "
            f"bias each), found {len(layers)} with kernels {kernels}; another architecture"
        )
    return {name: tuple(a) for (name, _), a in zip(WEIGHTED_LAYERS, layers, strict=True)}


def load_keras_weights(model: TutorialCNN, path: str | Path) -> None:
    """Load a Keras tutorial model's file into a ``TutorialCNN`` of its sizes, in place."""
    load_keras_state(model, read_keras_weights(path), source=str(path))


def export_keras_weights(model: TutorialCNN, path: str | Path) -> Path:
    """Write the weights to ``path`` as Keras 3 does, for ``build_model().load_weights(path)``.
    With no optimizer state in it, a compiled Keras model warns and keeps its own."""
    path = Path(path)
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"{path}: Keras loads weights only from a name ending in .weights.h5")
    arrays = keras_layout_state(model)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for torch_name, group_name in WEIGHTED_LAYERS + WEIGHTLESS_LAYERS:
            vars_group = f.create_group(f"layers/{group_name}/vars")
            vars_group.attrs["name"] = torch_name  # Keras records the layer's name here
            for i, array in enumerate(arrays.get(torch_name, ())):
                vars_group.create_dataset(str(i), data=array)
    write_atomic(path, buffer.getbuffer())  # an existing file is replaced only when complete
    return path
