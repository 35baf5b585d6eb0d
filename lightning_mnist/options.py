"""The CLI's defaults (the tutorial's callbacks, read from ``configs/tutorial.yaml``, and the
parts of a run folder) and the project's own options, beside Lightning's."""

from pathlib import Path

import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser

from lightning_mnist.presets import preset_names, preset_path
from lightning_mnist.run.folder import DEFAULT_ROOT
from lightning_mnist.run.plan import CALLBACK_GROUPS

CALLBACKS = (
    "run.results.HistoryRecorder",
    "run.resume.SaveOnInterrupt",
    "run.resume.KeepStopDecision",
    "predict.writer.PredictionCSV",
)


def defaults() -> dict:
    """The parser's defaults: the tutorial's callbacks and epochs, the run folder's parts."""
    tutorial = yaml.safe_load(preset_path("tutorial").read_text())
    return {
        **{key: tutorial[key] for key in CALLBACK_GROUPS},
        "trainer.max_epochs": tutorial["trainer"]["max_epochs"],
        "trainer.num_sanity_val_steps": 0,
        "trainer.default_root_dir": DEFAULT_ROOT,
        "trainer.logger": {"class_path": "lightning_mnist.run.logger.RunLogger"},
        "trainer.callbacks": [{"class_path": f"lightning_mnist.{name}"} for name in CALLBACKS],
        "trainer.plugins": [{"class_path": "lightning_mnist.run.checkpointing.AtomicCheckpointIO"}],
    }


OPTIONS = {  # name: (type, default, help)
    "tune_malloc": (
        bool,
        True,
        "keep freed memory in the process (glibc mallopt; changes no number, only speed: the "
        "conv output is not returned to the OS and re-faulted every step); results.json "
        "records whether it applied; false: glibc's defaults",
    ),
    "evaluate_initial_weights": (
        bool,
        False,
        "validate/test/predict without --ckpt_path evaluate the untrained network (refused "
        "otherwise, so random weights are never reported by mistake)",
    ),
    "init_weights": (
        str | None,
        None,
        "fit: start from the weights of a Keras tutorial model file (.weights.h5, .keras or "
        ".h5, read with h5py, no pickle) instead of the initialisation; mnist-compare "
        "--paired passes Keras's initial.weights.h5",
    ),
    "num_threads": (
        int | None,
        None,
        "torch CPU threads per process (default: torch's choice, all cores)",
    ),
}


def add_options(parser: LightningArgumentParser) -> None:
    """The project's options, the optional callback groups and the run's defaults."""
    for name, (kind, default, text) in OPTIONS.items():
        parser.add_argument(f"--{name}", type=kind, default=default, help=text)
    # Optional groups: `--checkpoint null` / `--early_stopping null` remove them, and
    # `--early_stopping.patience 4` changes one value.
    for key, cls in (("checkpoint", ModelCheckpoint), ("early_stopping", EarlyStopping)):
        parser.add_lightning_class_args(cls, key, subclass_mode=True, required=False)
    parser.set_defaults(defaults())


def with_preset_paths(args: list[str]) -> list[str]:
    """``--config tutorial`` names a shipped preset, as ``mnist-compare --config`` does."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        name = out[i + 1]
        if arg in ("--config", "-c") and not Path(name).exists() and name in preset_names():
            out[i + 1] = str(preset_path(name))
    return out
