"""A smoke-test fit, as a user types it, shows no warning off a short, documented list.

Upstream noise is filtered in ``lightning_mnist/quiet.py``; anything else this finds is a
warning the project causes, to be fixed at its source, or new upstream noise to document.
"""

from __future__ import annotations

import logging
import re
import warnings

import pytest
from helpers import cli_args

from lightning_mnist.cli import main

# Warnings a user may see and should: none today.
ALLOWED: tuple[str, ...] = ()


@pytest.mark.real_data
def test_a_smoke_test_fit_warns_nothing_off_the_list(data_dir, tmp_path, capsys, monkeypatch):
    args = ["fit", *cli_args(data_dir, tmp_path, "--trainer.fast_dev_run", "true")]
    monkeypatch.setattr("sys.argv", ["lightning-mnist", *args])  # the command line itself
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # what pytest's own filters would hide, too
        assert main() == 0
    messages = [f"{w.category.__name__}: {w.message}" for w in seen]
    unexpected = [m for m in messages if not any(re.search(a, m) for a in ALLOWED)]
    assert not unexpected, "\n".join(unexpected)
    out, err = capsys.readouterr()
    assert "litlogger" not in out + err and "Warning" not in err


def test_every_other_warning_stays_visible():
    # docs/usage.md: only the listed upstream notices are silenced; every other warning stays.
    from lightning_mnist.quiet import quiet_upstream

    lightning_like = "The number of training batches (3) is smaller than the dataset's length"
    sent = [
        ("The dataloader, train, does not have many workers", UserWarning),  # listed
        ("a warning this project's own code raises", UserWarning),
        (lightning_like, UserWarning),
        ("a deprecated call", DeprecationWarning),
    ]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_upstream()
        for text, category in sent:
            warnings.warn(text, category, stacklevel=1)
    shown = [str(w.message) for w in seen]
    assert shown == [
        "a warning this project's own code raises",
        lightning_like,
        "a deprecated call",
    ]


def test_lightnings_other_notices_stay_visible():
    # Lightning's cloud-logger tip is dropped; its other notices reach the user.
    from lightning_mnist.quiet import quiet_upstream

    quiet_upstream()
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.warning("Tip: try litlogger for a cloud dashboard")
        logger.warning("GPU available: False, used: False")
    finally:
        logger.removeHandler(handler)
    assert seen == ["GPU available: False, used: False"]
