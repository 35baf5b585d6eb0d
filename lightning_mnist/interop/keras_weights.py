"""Move weights between the Keras tutorial model and ``TutorialCNN`` with h5py only.

Keras files read (the layouts Keras 3.15 writes, checked with h5py):

- ``.weights.h5`` (``model.save_weights``): ``layers/<auto name>/vars/0`` (kernel) and ``/1``
  (bias). The group names come from the layer classes in model order, numbered per class:
  ``conv2d``, ``max_pooling2d``, ``flatten``, ``dense``, ``dropout``, ``dense_1``.
- ``.keras`` (``model.save``): a zip holding the same ``model.weights.h5``.
- legacy ``.h5`` (``model.save("best_model.h5")``, as the tutorial does, Keras 2 or 3):
  ``model_weights/`` whose ``layer_names`` attribute lists the layers in model order and whose
  per-layer ``weight_names`` attribute lists kernel then bias. A Keras 2 weights-only ``.h5``
  has the same attributes at the root.

Layout (docs/parity.md #5): Keras is channels-last. A Conv2D kernel is HWIO and becomes torch's
OIHW by ``transpose(3, 2, 0, 1)``. A Dense kernel is (in, out) and ``nn.Linear.weight`` is
(out, in), so it is transposed. Keras's Flatten reads (H, W, C) and so does ``TutorialCNN``
(it flattens ``x.permute(0, 2, 3, 1)``), so the rows of fc1's kernel need no permutation.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch

from lightning_mnist.atomic import write_atomic
from lightning_mnist.model import ImprovedCNN, TutorialCNN

# Weighted layers of the tutorial model, in model order: (torch module name, Keras group).
WEIGHTED_LAYERS: tuple[tuple[str, str], ...] = (
    ("conv", "conv2d"),
    ("fc1", "dense"),
    ("fc2", "dense_1"),
)
# Weightless Keras layers, written only so the file mirrors what Keras itself saves.
WEIGHTLESS_LAYERS: tuple[tuple[str, str], ...] = (
    ("pool", "max_pooling2d"),
    ("flatten", "flatten"),
    ("dropout", "dropout"),
)

KerasArrays = dict[str, tuple[np.ndarray, np.ndarray]]


def to_keras_layout(tensor: torch.Tensor) -> np.ndarray:
    """A copy of a torch weight (or its gradient) as a float32 array in Keras layout.

    Args:
        tensor: A conv weight (OIHW, becomes HWIO), a Linear weight ((out, in), becomes
            (in, out)) or a bias (unchanged).
    """
    array = tensor.detach().to("cpu", torch.float32).numpy()
    if array.ndim == 4:
        array = array.transpose(2, 3, 1, 0)
    elif array.ndim == 2:
        array = array.T
    return np.array(array, order="C")  # a copy: .numpy() shares the tensor's memory


def keras_layout_state(model: TutorialCNN) -> KerasArrays:
    """Weights in Keras layout: ``{"conv": (HWIO kernel, bias), "fc1": ..., "fc2": ...}``.

    Args:
        model: The torch model; its tensors are copied to float32 NumPy arrays.
    """
    return {
        name: (
            to_keras_layout(getattr(model, name).weight),
            to_keras_layout(getattr(model, name).bias),
        )
        for name, _ in WEIGHTED_LAYERS
    }


def load_keras_state(model: TutorialCNN, arrays: KerasArrays, source: str = "weights") -> None:
    """Copy Keras-layout arrays (as ``keras_layout_state`` returns) into the model, in place.

    Args:
        model: The torch model to fill; its device and dtype are kept.
        arrays: ``{"conv"|"fc1"|"fc2": (kernel, bias)}`` in Keras layout.
        source: Name of where the arrays came from, for error messages.

    Raises:
        ValueError: A shape differs from the model's, i.e. not the tutorial's architecture.
    """
    expected = keras_layout_state(model)
    converted: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (want_kernel, want_bias) in expected.items():
        kernel, bias = (np.asarray(a, dtype=np.float32) for a in arrays[name])
        if kernel.shape != want_kernel.shape or bias.shape != want_bias.shape:
            raise ValueError(
                f"{source}: layer {name} has kernel {kernel.shape} and bias {bias.shape}, but "
                f"this TutorialCNN needs {want_kernel.shape} and {want_bias.shape}; pass a file "
                "saved from the tutorial's model with the same filters/hidden/num_classes"
            )
        converted[name] = (kernel.transpose(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T, bias)
    with torch.no_grad():  # all shapes are checked first, so a bad file changes nothing
        for name, (weight, bias) in converted.items():
            layer = getattr(model, name)
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            layer.bias.copy_(torch.from_numpy(bias))


def _natural_key(name: str) -> tuple[str, int]:
    # Keras numbers repeated classes "dense", "dense_1", ..., "dense_10": sort by number.
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    assert match is not None
    return match.group(1), int(match.group(2) or 0)


def _weighted_layers_v3(layers: h5py.Group) -> list[list[np.ndarray]]:
    # Keras 3 stores no cross-class order; in a Sequential CNN the conv layers (4-D kernels)
    # come before the dense layers, and each class is numbered in model order.
    found = []
    for group_name in layers:
        vars_group = layers[group_name].get("vars")
        if vars_group is not None and len(vars_group):
            arrays = [vars_group[str(i)][()] for i in range(len(vars_group))]
            found.append((-arrays[0].ndim, _natural_key(group_name), arrays))
    return [arrays for *_, arrays in sorted(found, key=lambda item: item[:2])]


def _weighted_layers_legacy(root: h5py.Group) -> list[list[np.ndarray]]:
    found = []
    for layer_name in root.attrs["layer_names"]:
        group = root[_str(layer_name)]
        names = [_str(n) for n in group.attrs.get("weight_names", [])]
        if names:
            found.append([group[n][()] for n in names])
    return found


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_h5(f: h5py.File) -> list[list[np.ndarray]]:
    if "layers" in f:
        return _weighted_layers_v3(f["layers"])
    if "model_weights" in f:
        return _weighted_layers_legacy(f["model_weights"])
    if "layer_names" in f.attrs:
        return _weighted_layers_legacy(f)
    raise ValueError("no 'layers' or 'model_weights' group")


def read_keras_weights(path: str | Path) -> KerasArrays:
    """Read the tutorial model's weights from a ``.keras``, ``.h5`` or ``.weights.h5`` file.

    Args:
        path: The Keras file; its format is recognised from its content, not its name.

    Returns:
        ``{"conv": (HWIO kernel, bias), "fc1": (kernel, bias), "fc2": (kernel, bias)}``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Not a Keras weights file, or not three layers Conv2D, Dense, Dense.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Keras file")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                payload = io.BytesIO(archive.read("model.weights.h5"))
            with h5py.File(payload, "r") as f:
                layers = _read_h5(f)
        else:
            with h5py.File(path, "r") as f:
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
    return {
        name: (arrays[0], arrays[1])
        for (name, _), arrays in zip(WEIGHTED_LAYERS, layers, strict=True)
    }


def load_keras_weights(model: TutorialCNN, path: str | Path) -> None:
    """Load a Keras tutorial model's weights into ``model``, in place.

    Args:
        model: A ``TutorialCNN`` whose filters/hidden/num_classes match the file.
        path: A ``.keras``, legacy ``.h5`` (e.g. the tutorial's ``best_model.h5``) or
            ``.weights.h5`` file.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not the tutorial's architecture at the model's sizes.
    """
    load_keras_state(model, read_keras_weights(path), source=str(path))


def export_keras_weights(model: TutorialCNN, path: str | Path) -> Path:
    """Write the model's weights as a Keras 3 ``.weights.h5`` file.

    ``keras_reference.model.build_model().load_weights(path)`` accepts it. The file holds no
    optimizer state, so a compiled Keras model warns "Skipping variable loading for optimizer"
    and keeps its own (fresh) optimizer.

    Args:
        model: The torch model to export.
        path: Output file; Keras requires the name to end in ``.weights.h5``.

    Returns:
        The path written.
    """
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


def improved_keras_arrays(model: ImprovedCNN) -> dict[str, list[np.ndarray]]:
    """The improved network's weights per Keras layer name, in Keras layout and in each
    layer's ``get_weights()`` order, for ``keras_model.get_layer(name).set_weights(...)``.

    Conv: ``[HWIO kernel]`` (no bias). BatchNorm: ``[gamma, beta, moving_mean,
    moving_variance]`` = torch's ``[weight, bias, running_mean, running_var]``. Dense:
    ``[kernel (in, out), bias]``; fc1's rows are already in Keras's NHWC flatten order.
    """
    arrays: dict[str, list[np.ndarray]] = {}
    for name, layer in model.features.named_children():
        if isinstance(layer, torch.nn.Conv2d):
            arrays[name] = [to_keras_layout(layer.weight)]
        elif isinstance(layer, torch.nn.BatchNorm2d):
            stats = (layer.weight, layer.bias, layer.running_mean, layer.running_var)
            arrays[name] = [to_keras_layout(t) for t in stats]
    for name in ("fc1", "fc2"):
        layer = getattr(model, name)
        arrays[name] = [to_keras_layout(layer.weight), to_keras_layout(layer.bias)]
    return arrays


def load_improved_keras_arrays(model: ImprovedCNN, arrays: dict[str, list[np.ndarray]]) -> None:
    """Copy Keras-layout arrays (as :func:`improved_keras_arrays` returns, e.g. from each
    Keras layer's ``get_weights()``) into the model, in place; shapes are checked first.

    Raises:
        ValueError: A layer is missing or a shape differs (another architecture or size).
    """
    expected = improved_keras_arrays(model)
    for name, want in expected.items():
        got = arrays.get(name)
        shapes = [np.shape(a) for a in got] if got is not None else None
        if shapes != [a.shape for a in want]:
            raise ValueError(
                f"layer {name}: expected arrays of shapes {[a.shape for a in want]}, got {shapes}"
            )
    targets = dict(model.features.named_children()) | {"fc1": model.fc1, "fc2": model.fc2}
    with torch.no_grad():
        for name in expected:
            layer, values = targets[name], arrays[name]
            if isinstance(layer, torch.nn.BatchNorm2d):
                tensors = (layer.weight, layer.bias, layer.running_mean, layer.running_var)
            elif isinstance(layer, torch.nn.Conv2d):
                tensors = (layer.weight,)
            else:
                tensors = (layer.weight, layer.bias)
            for tensor, value in zip(tensors, values, strict=True):
                value = np.asarray(value, dtype=np.float32)
                if value.ndim == 4:
                    value = value.transpose(3, 2, 0, 1)
                elif value.ndim == 2:
                    value = value.T
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(value)))
