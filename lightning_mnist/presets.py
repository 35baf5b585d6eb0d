"""The LightningCLI presets shipped in the package (``lightning_mnist/configs/*.yaml``); in a
clone, ``configs/`` at the top of the repository links to the same folder."""

from importlib.resources import files
from pathlib import Path

import yaml


def preset_names() -> list[str]:
    """The names of the shipped presets, e.g. ``["ddp", "tutorial"]``."""
    folder = files("lightning_mnist") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """An existing YAML file: ``name_or_path`` itself, or the shipped preset of that name;
    FileNotFoundError when it is neither."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    if name in preset_names():
        # A regular install unpacks package data as files, so this is a real path.
        return Path(str(files("lightning_mnist") / "configs" / f"{name}.yaml"))
    raise FileNotFoundError(
        f"preset {name_or_path} not found: give a YAML file or one of {preset_names()}"
    )


def preset_facts(name_or_path: str | Path) -> dict[str, int]:
    """A preset's ``max_epochs``, EarlyStopping ``patience`` and ``batch_size``, read from its
    YAML so that the Keras reference, the comparison and the benchmark never repeat them."""
    config = yaml.safe_load(preset_path(name_or_path).read_text())
    return {
        "max_epochs": config["trainer"]["max_epochs"],
        "patience": config["early_stopping"]["init_args"]["patience"],
        "batch_size": config["data"]["batch_size"],
    }
