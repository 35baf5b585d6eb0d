"""Upstream notices that carry no information here, silenced in this one place, each saying
why. Everything else stays visible, since a user who learns to ignore warnings misses the one
that matters; tests/test_quiet.py fails on any other warning of a smoke-test fit."""

import logging
import os
import warnings

NOISE = (
    # LightningCLI replaces the system's own (Keras Adam) configure_optimizers with the
    # preset's optimizer section, as intended.
    r".*configure_optimizers` will be overridden",
    # Lightning's own use of a torch API that torch has renamed.
    r".*isinstance\(treespec, LeafSpec\)",
    # The batches are slices of tensors in memory: worker processes would only add copies.
    r".*does not have many workers",
    # A short run (fast_dev_run, limit_train_batches) logs fewer steps than the interval.
    r".*is smaller than the logging interval",
    # A new run refuses a checkpoints folder that holds files (run/plan.py), so this is only
    # ever said on a resume, about the run's own checkpoints.
    r"Checkpoint directory .* exists and is not empty",
    # Under mixed precision the weights stay float32, which is the size the summary then shows.
    r"Precision .*-mixed is not supported by the model summary",
    # PredictionCSV orders the predictions itself; it needs no sampler indices.
    r"Couldn't infer the batch indices",
    # Under DDP the system logs epoch means it has already summed over every rank
    # (EpochSums.compute), so each rank logs the same exact value; only those names.
    r".*self\.log\('(val_|test_)?(loss|accuracy|samples)', \.\.\., sync_dist=True\)",
)


def _no_tips(record: logging.LogRecord) -> bool:
    """Drop Lightning's advertisement for a cloud logger, shown on every command."""
    return "litlogger" not in record.getMessage()


def quiet_upstream() -> None:
    """Install the filters (idempotent)."""
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern)
    # LightningCLI's own calls of jsonargparse APIs that jsonargparse has deprecated.
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _no_tips not in logger.filters:
            logger.addFilter(_no_tips)
