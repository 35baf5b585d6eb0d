"""Pre-flight checks: a mistake in the command is found before anything is built or written."""

import importlib
import os
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from lightning_mnist.errors import UserError, one_line

MAX_CONFIG_NODES = 100_000  # a preset has about 60 values
LOGGED = {f"{p}{m}" for p in ("", "val_") for m in ("loss", "accuracy", "samples")}


def check_config_files(args: list[str]) -> None:
    """Each ``--config FILE`` holds a YAML mapping of bounded size, else one line naming it.
    Only composed, so nested aliases that would expand to gigabytes are refused unexpanded."""
    files = [b for a, b in zip(args, args[1:], strict=False) if a in ("--config", "-c")]
    files += [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    for name in files:
        path = Path(name)
        if not path.is_file():
            continue  # the parser says so, naming the file
        try:
            node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or one_line(e)
            raise UserError(f"{name}: not valid YAML{where} ({problem})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{name}: cannot be read ({one_line(e)})") from None
        if node is None:
            raise UserError(f"{name} is empty; a config holds keys such as trainer:, model:, data:")
        if not isinstance(node, yaml.MappingNode):
            raise UserError(f"{name} is not a mapping of keys (trainer:, model:, data:, ...)")
        if expanded_size(node, {}) > MAX_CONFIG_NODES:
            raise UserError(f"{name}: its aliases expand to over {MAX_CONFIG_NODES:,} values")


def expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """How many values ``node`` holds once every alias is expanded (aliases share nodes)."""
    if id(node) in seen:
        return seen[id(node)]
    seen[id(node)] = MAX_CONFIG_NODES + 1  # a node that contains itself never ends
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    seen[id(node)] = 1 + sum(expanded_size(child, seen) for child in children)
    return seen[id(node)]


def check_flags_against(saved: dict, args: list[str], model: Any) -> None:
    """Refuse a ``--model.X`` flag that contradicts the checkpoint: Lightning rebuilds the
    model from the checkpoint's own hyper-parameters, so the flag would be silently ignored."""
    for name, value in saved.items():
        given = any(a == f"--model.{name}" or a.startswith(f"--model.{name}=") for a in args)
        if given and not name.startswith("_") and _same(model.get(name)) != _same(value):
            raise UserError(
                f"--model.{name} {model.get(name)} contradicts the checkpoint, which has "
                f"{name} {value}; drop the flag or use a checkpoint trained with it"
            )


def _same(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def check_optimizer(config: Any) -> None:
    """The optimizer's own argument checks (a negative lr, ...), run before anything is built."""
    if not config or not config.get("class_path"):
        return
    module, name = config.class_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    try:
        cls([torch.nn.Parameter(torch.zeros(1))], **dict(config.get("init_args") or {}))
    except ValueError as e:
        raise UserError(f"optimizer {name}: {one_line(e)}") from None


def check_root(root: Path) -> None:
    """Refuse a run root that is a file or cannot be written, before anything is built."""
    if root.exists() and not root.is_dir():
        raise UserError(f"--trainer.default_root_dir {root} is a file; give a folder")
    existing = next((p for p in [root, *root.parents] if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"--trainer.default_root_dir {root}: {existing} is not writable")


def check_settings(cfg: Any, subcommand: str | None) -> None:
    """Values no run can use: no epochs to train, no threads to train on."""
    if subcommand == "fit" and cfg.trainer.get("max_epochs") == 0:
        raise UserError("--trainer.max_epochs 0 trains nothing; give 1 or more (-1: no limit)")
    seed = cfg.get("seed_everything")
    if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
        raise UserError(f"--seed_everything {seed}: a seed is in 0 .. 2**32 - 1")
    if cfg.get("num_threads") is not None and cfg.num_threads < 1:
        raise UserError(f"--num_threads must be at least 1, got {cfg.num_threads}")
    if cfg.get("init_weights") and (subcommand != "fit" or cfg.get("ckpt_path")):
        raise UserError("--init_weights starts a new fit; it takes no --ckpt_path, and only fit")
    precision = str(cfg.trainer.get("precision") or "")
    if precision.startswith("transformer-engine") and find_spec("transformer_engine") is None:
        raise UserError(
            f"--trainer.precision {precision} needs NVIDIA's transformer_engine (and its GPU), "
            "which is not installed; 32-true, bf16-mixed and 16-mixed need nothing more"
        )


def check_fit(trainer: Any, model: Any, datamodule: Any, num_classes: int) -> None:
    """Before fit (and before DDP starts its processes, so an error prints once)."""
    datamodule.check_world_size(trainer.world_size)
    if model.hparams.num_classes < num_classes:
        raise UserError(
            f"model.num_classes {model.hparams.num_classes} is fewer than the "
            f"{num_classes} classes of {datamodule.dataset}"
        )
    for callback in trainer.callbacks:
        if isinstance(callback, ModelCheckpoint | EarlyStopping) and callback.monitor:
            check_monitor(callback)


def check_monitor(callback: ModelCheckpoint | EarlyStopping) -> None:
    """A misspelled monitor is found now, not after the first epoch; a mode that would take
    the worst epoch for the best (the lowest accuracy, the highest loss) is refused."""
    name, monitor, mode = type(callback).__name__, callback.monitor, callback.mode
    if monitor not in LOGGED:
        raise UserError(
            f"{name} monitors {monitor!r}, which is never logged; choose one of {sorted(LOGGED)}"
        )
    better = "max" if monitor.endswith("accuracy") else "min" if monitor.endswith("loss") else mode
    group = "checkpoint" if isinstance(callback, ModelCheckpoint) else "early_stopping"
    if mode != better:
        raise UserError(
            f"{name} monitors {monitor!r} with mode {mode!r}, which counts a worse epoch as "
            f"better; give --{group}.mode {better}"
        )
