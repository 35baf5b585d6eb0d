"""The history both frameworks record in results.json, and its best epoch. No torch: the Keras
reference imports it too."""

import math

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")  # Keras's names


def best_epoch(val_loss: list[float | None]) -> int | None:
    """The 1-based epoch of the lowest val_loss, the one ModelCheckpoint kept: it saves on
    strict improvement only, so on a tie the first epoch wins. An epoch without a finite
    val_loss (not validated, or NaN) never wins; None when no epoch has one."""
    validated = [i for i, v in enumerate(val_loss) if v is not None and math.isfinite(v)]
    return 1 + min(validated, key=val_loss.__getitem__) if validated else None
