"""Tests of keras_reference: the model, the data reader, the run folder and the import boundary.

The real-data test runs the CLI in a subprocess, so TensorFlow's global state (seeds, op
determinism) stays out of the pytest process and ``sys.modules`` shows what the run imported.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import require_tensorflow  # noqa: E402

require_tensorflow("keras_reference needs the [keras] extra")

import keras_reference  # noqa: E402, F401  (pins KERAS_BACKEND before keras loads)
from keras_reference.data import FILES, DataError, load_data, parse_idx, read_idx  # noqa: E402

pytestmark = pytest.mark.keras

REPO = Path(__file__).resolve().parents[1]
# `data_dir` (conftest.py) is the real data root; it fails the test when MNIST is missing.
# Modules the reference must never load: the port and the torch stack it builds on; of the port
# only the torch-free preset reader, atomic writer, plots, history rule and allocator setting.
FORBIDDEN = ("torch", "torchvision", "torchmetrics", "lightning", "lightning_mnist")
ALLOWED = (
    "lightning_mnist",
    "lightning_mnist.presets",
    "lightning_mnist.atomic",
    "lightning_mnist.ops",
    "lightning_mnist.ops.malloc",
    "lightning_mnist.run",
    "lightning_mnist.run.history",
    "lightning_mnist.run.plots",
)
LOADED = (
    f"sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r} and m not in {ALLOWED!r})"
)


def _run(code: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


# --- model ----------------------------------------------------------------------------------


def test_model_summary_shapes_and_params() -> None:
    from keras_reference.model import build_model

    model = build_model()
    shapes = [(layer.name, tuple(layer.output.shape)) for layer in model.layers]
    assert shapes == [
        ("conv", (None, 26, 26, 32)),  # 28 - 3 + 1 = 26, "valid" padding
        ("pool", (None, 13, 13, 32)),
        ("flatten", (None, 13 * 13 * 32)),
        ("fc1", (None, 32)),
        ("dropout", (None, 32)),
        ("fc2", (None, 10)),
    ]
    # conv 3*3*1*32 + 32, fc1 5408*32 + 32, fc2 32*10 + 10
    assert model.count_params() == 173_738
    assert model.loss == "categorical_crossentropy"
    assert type(model.optimizer).__name__ == "Adam"
    assert model.layers[-1].activation.__name__ == "softmax"


# --- data -----------------------------------------------------------------------------------


def test_parse_idx_round_trip_and_truncation() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert np.array_equal(parse_idx(_idx(images)), images)
    with pytest.raises(ValueError, match="bytes"):
        parse_idx(_idx(images)[:-1])
    with pytest.raises(ValueError, match="magic"):
        parse_idx(b"\x00\x00\x0d\x01" + bytes(8))


def test_read_idx_checks_shape(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_bytes(_idx(np.zeros(5)))
    assert read_idx(path, 2049, 5).shape == (5,)
    with pytest.raises(DataError, match="expected"):
        read_idx(path, 2049, 6)


def test_partial_data_dir_is_an_error_not_a_download(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx(np.zeros(60000)))
    with pytest.raises(DataError, match="missing train-images-idx3-ubyte"):
        load_data(tmp_path)


def test_a_failed_keras_download_leaves_no_folders_behind(tmp_path, monkeypatch) -> None:
    import keras

    home = tmp_path / "home" / ".keras"
    (home / "models").mkdir(parents=True)  # the user's own folder stays
    monkeypatch.setenv("KERAS_HOME", str(home))

    def offline() -> None:  # what get_file does offline: make the cache folder, then fail
        (home / "datasets" / "fashion-mnist").mkdir(parents=True)
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(DataError, match="network unreachable"):
        load_data(tmp_path / "no-idx-here", "fashion_mnist")
    assert sorted(p.name for p in home.iterdir()) == ["models"]


@pytest.mark.real_data
def test_real_data_matches_keras_layout(data_dir: Path) -> None:
    (x_train, y_train), (x_test, y_test) = load_data(data_dir)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # MNIST's well-known start
    assert y_test[:5].tolist() == [7, 2, 1, 0, 4]


@pytest.mark.real_data
def test_a_flipped_byte_behind_an_intact_header_fails_the_md5(data_dir: Path, tmp_path) -> None:
    """Three real files linked, the test labels copied with one label changed to another
    digit: size, header and label range all pass, so only the MD5 can tell."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, _, _ in FILES:
        (raw / name).symlink_to((data_dir / "MNIST" / "raw" / name).resolve())
    labels = raw / "t10k-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    labels.unlink()
    blob[8] = (blob[8] + 1) % 10  # the first label (a 7) becomes an 8
    labels.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: MD5 differs"):
        load_data(tmp_path)


# --- command line ---------------------------------------------------------------------------


def test_refuses_an_out_dir_with_results(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from keras_reference.__main__ import main

    (tmp_path / "results.json").write_text("{}")
    assert main(["--data.data_dir", str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "results.json exists" in err and "\n" not in err
    assert (tmp_path / "results.json").read_text() == "{}"


def test_best_epoch_is_the_first_lowest_val_loss() -> None:
    from lightning_mnist.run.history import best_epoch  # both frameworks' rule

    # ModelCheckpoint(save_best_only=True) saves on strict improvement: ties keep the first.
    assert best_epoch([0.5, 0.3, 0.3, 0.4]) == 2
    assert best_epoch([float("nan"), 0.2, 0.1]) == 3
    assert best_epoch([None, float("nan")]) is None  # nothing validated: no best, not epoch 1


# --- import boundary ------------------------------------------------------------------------


def test_never_imports_torch_or_the_port() -> None:
    code = (
        "import sys\n"
        "import keras_reference.tutorial, keras_reference.__main__\n"
        "from keras_reference.model import build_model\n"
        "build_model()\n"
        f"print({LOADED})\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# --- a real run -----------------------------------------------------------------------------


@pytest.mark.real_data
@pytest.mark.slow
def test_three_epochs_on_real_mnist(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # main() in a fresh interpreter, then the forbidden modules it loaded along the way.
    code = (
        "import sys\n"
        "from keras_reference.__main__ import main\n"
        "rc = main(sys.argv[1:])\n"
        f"print('FORBIDDEN', {LOADED})\n"
        "sys.exit(rc)\n"
    )
    args = [
        "--data.data_dir",
        str(data_dir),
        "--trainer.max_epochs",
        "3",
        "--out",
        str(out),
        "--verbose",
        "2",
    ]
    proc = _run(code, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FORBIDDEN []" in proc.stdout
    assert "Testing Accuracy: " in proc.stdout

    results = json.loads((out / "results.json").read_text())
    expected_keys = {
        "framework", "dataset", "seed", "epochs_run", "best_epoch", "history", "epoch_seconds",
        "fit_seconds", "test_loss", "test_accuracy", "test_samples", "params", "best_model",
        "device", "versions",
    }  # fmt: skip
    assert expected_keys <= results.keys()
    assert results["framework"] == "keras" and results["dataset"] == "mnist"
    assert results["seed"] == 0 and results["epochs_run"] == 3
    assert set(results["history"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in results["history"].values())
    assert len(results["epoch_seconds"]) == 3 and results["fit_seconds"] > 0
    val_loss = results["history"]["val_loss"]
    assert results["best_epoch"] == 1 + int(np.argmin(val_loss))
    assert results["test_samples"] == 10000 and results["params"] == 173_738
    # The allocator setting is on by default and applied wherever the C library is glibc.
    assert results["tune_malloc"] is (platform.libc_ver()[0] == "glibc")
    assert {"python", "numpy", "keras", "tensorflow"} <= results["versions"].keys()
    # What the comparison reads: the best model's predictions, phase timings, latency, memory.
    rows = np.loadtxt(out / results["test_predictions"], delimiter=",", skiprows=1, dtype=int)
    assert rows.shape == (10000, 2)
    assert (rows[:, 0] == rows[:, 1]).mean() == pytest.approx(results["test_accuracy"], abs=1e-4)
    t = results["timing"]
    assert t["train"] + t["validation"] == pytest.approx(sum(results["epoch_seconds"]))
    assert 0 < t["validation"] < t["train"] and t["checkpoint"] > 0 and t["test"] > 0
    assert set(results["inference_ms"]) == {"1", "256"} and results["peak_rss_mb"] > 100
    assert (
        results["environment"]["logical_cpus"] and "intra_op" in results["environment"]["threads"]
    )
    # Three epochs reach about 96.7% (seed 0); 0.95 leaves room for oneDNN rounding.
    assert results["test_accuracy"] >= 0.95
    for name in ("accuracy.png", "loss.png", results["best_model"]):
        assert (out / name).stat().st_size > 0

    # The best model file loads again and scores the same on the test set.
    import keras

    model = keras.models.load_model(out / results["best_model"])
    _, (x_test, y_test) = load_data(data_dir)
    x = np.expand_dims(x_test, axis=-1).astype("float32") / 255
    loss, acc = model.evaluate(x, keras.utils.to_categorical(y_test, 10), verbose=0)
    # The same weights on the same images in the same batches: only float summation order in
    # the mean could differ, far below one image (1e-4).
    assert acc == pytest.approx(results["test_accuracy"], abs=1e-6)
    assert loss == pytest.approx(results["test_loss"], rel=1e-4)


# --- options and the improved recipe, without training ---------------------------------------


def _patched_run(monkeypatch) -> dict:
    """``run_tutorial`` replaced by a stand-in that keeps its keyword arguments."""
    import keras_reference.tutorial as tutorial

    got: dict = {}
    monkeypatch.setattr(tutorial, "run_tutorial", lambda **kw: got.update(kw) or {"seed": 0})
    monkeypatch.setattr("keras_reference.results.write_results", lambda out, results: out)
    return got


def test_deterministic_and_jit_compile_reach_the_run(monkeypatch, tmp_path) -> None:
    from keras_reference.__main__ import main

    got = _patched_run(monkeypatch)
    args = ["--out", str(tmp_path / "a"), "--deterministic", "true", "--jit_compile", "true"]
    assert main([*args, "--tune_malloc", "false"]) == 0
    assert (got["deterministic"], got["jit_compile"]) == (True, True)
    assert main(["--out", str(tmp_path / "b"), "--tune_malloc", "false"]) == 0
    assert (got["deterministic"], got["jit_compile"]) == (False, "auto")  # the tutorial's


def test_improved_preset_runs_the_yaml_recipe(monkeypatch, tmp_path) -> None:
    """docs/improved.md: batch 128, at most 15 epochs, EarlyStopping(patience=4), the same
    augmentation ranges and Dropout(0.4) as configs/improved.yaml."""
    import yaml

    from keras_reference import improved
    from keras_reference.__main__ import main
    from lightning_mnist.presets import preset_path

    got = _patched_run(monkeypatch)
    args = ["--out", str(tmp_path / "run"), "--preset", "improved", "--tune_malloc", "false"]
    assert main(args) == 0
    assert (got["preset"], got["batch_size"], got["epochs"], got["patience"]) == (
        "improved", 128, 15, 4,
    )  # fmt: skip
    config = yaml.safe_load(preset_path("improved").read_text())
    data = config["data"]
    ranges = (data["augment_rotation"], data["augment_zoom"], data["augment_shift"])
    assert tuple(improved.AUGMENT[k] for k in ("rotation", "zoom", "shift")) == ranges
    model = improved.build_improved_model()
    assert model.get_layer("dropout").rate == config["model"]["dropout"] == 0.4
    assert model.get_layer("augment").get_config()["rotation"] == ranges[0]


def test_improved_schedule_is_the_ports_exponential_lr(tmp_path) -> None:
    """lr = 0.002 * 0.8 ** epoch, the YAML's Adam lr and ExponentialLR gamma, set per epoch
    by a LearningRateScheduler that only the improved preset adds."""
    import keras
    import yaml

    from keras_reference import improved
    from keras_reference.tutorial import fit_with_callbacks
    from lightning_mnist.presets import preset_path

    config = yaml.safe_load(preset_path("improved").read_text())
    lr, gamma = config["optimizer"]["init_args"]["lr"], config["lr_scheduler"]["init_args"]["gamma"]
    assert (lr, gamma) == (0.002, 0.8)
    for epoch in (0, 1, 3, 14):
        assert improved.schedule(epoch, 1.0) == pytest.approx(lr * gamma**epoch, rel=1e-12)

    class FitRecorder:  # a model whose fit keeps its callbacks and trains nothing
        def fit(self, callbacks, **kwargs):
            self.callbacks = callbacks

    def callbacks(preset: str) -> list:
        model = FitRecorder()
        fit_with_callbacks(model, {}, tmp_path, 15, 4, 0, preset, {})
        return model.callbacks

    schedulers = [
        c for c in callbacks("improved") if isinstance(c, keras.callbacks.LearningRateScheduler)
    ]
    assert [s.schedule for s in schedulers] == [improved.schedule]
    stop = next(c for c in callbacks("improved") if isinstance(c, keras.callbacks.EarlyStopping))
    assert stop.patience == 4
    assert not any(
        isinstance(c, keras.callbacks.LearningRateScheduler) for c in callbacks("tutorial")
    )


def test_a_keras_backend_the_user_sets_is_kept(monkeypatch) -> None:
    """docs/comparing.md: ``KERAS_BACKEND=torch python -m keras_reference`` runs Keras on its
    torch backend: the package pins tensorflow only where the variable is unset (Keras reads
    it when it is first imported)."""
    import importlib

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    importlib.reload(keras_reference)
    assert os.environ["KERAS_BACKEND"] == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    importlib.reload(keras_reference)
    assert os.environ["KERAS_BACKEND"] == "tensorflow"


def test_deterministic_on_another_backend_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    """``--deterministic true`` with ``KERAS_BACKEND=torch`` is refused in one line, exit 2,
    before anything is written."""
    from keras_reference.__main__ import main

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    out = tmp_path / "run"
    assert main(["--deterministic", "true", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --deterministic needs KERAS_BACKEND=tensorflow, not torch"]
    assert not out.exists()
