"""Fake runs for the comparison's tests, laid out as mnist-compare lays out real ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

TABLE_HEAD = "| framework | seed | epochs run | best epoch | val acc | val loss | test acc |"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def fake_results(framework: str, seed: int, test_accuracy: float, epochs: int = 4) -> dict:
    """A results.json dict in the shared schema, with made-up but plausible numbers."""
    val_loss = [0.20 - 0.03 * e for e in range(epochs)]
    val_loss[-1] = val_loss[-2] + 0.01  # best epoch = epochs - 1
    return {
        "framework": framework,
        "dataset": "mnist",
        "seed": seed,
        "epochs_run": epochs,
        "best_epoch": epochs - 1,
        "history": {
            "loss": [0.5 - 0.05 * e for e in range(epochs)],
            "accuracy": [0.85 + 0.02 * e for e in range(epochs)],
            "val_loss": val_loss,
            "val_accuracy": [0.94 + 0.01 * e for e in range(epochs)],
        },
        "epoch_seconds": [9.0] + [3.0 + 0.1 * e for e in range(epochs - 1)],
        "fit_seconds": 20.0,
        "test_loss": 0.06,
        "test_accuracy": test_accuracy,
        "test_samples": 10000,
        "params": 173738,
        "best_model": "best_model.h5",
        "device": "cpu (fake)",
        "versions": {"python": "3.x"},
    }


LABELS = np.arange(20) % 10


def fake_measured(results: dict, predicted: np.ndarray, launched_at: float = 1000.0) -> dict:
    """The fields a finished run adds besides accuracy: predictions, timing, latency, memory."""
    results = dict(results, test_samples=len(predicted), test_predictions="test_predictions.csv")
    results["_predicted"] = predicted
    results["timing"] = {
        "data_started_at": launched_at + 4.0,  # 4 s of start-up
        "data": 1.0,
        "train": 10.0,
        "validation": 2.0,
        "checkpoint": 0.5,
        "fit_other": 0.5,
        "test": 1.0,
    }
    results["_process"] = {"launched_at": launched_at, "process_seconds": 21.0}  # 2 s after
    results["inference_ms"] = {"1": 0.5, "256": 6.0}
    results["peak_rss_mb"] = 900.0
    results["environment"] = {
        "cpu_model": "Fake CPU",
        "logical_cpus": 2,
        "threads": {"intra_op": 2},
    }
    return results


def write_fake_runs(out: Path, runs: list[dict]) -> None:
    """Lay out run folders as mnist-compare does: Keras's flat, Lightning's under version_0,
    process.json in the seed folder, test_predictions.csv beside results.json."""
    for r in runs:
        r = dict(r)
        seed_dir = out / "runs" / f"{r['framework']}-seed{r['seed']}"
        folder = seed_dir / ("version_0" if r["framework"] == "lightning" else "")
        folder.mkdir(parents=True)
        predicted, process = r.pop("_predicted", None), r.pop("_process", None)
        if predicted is not None:
            rows = np.stack([LABELS[: len(predicted)], predicted], axis=1)
            np.savetxt(
                folder / "test_predictions.csv",
                rows,
                fmt="%d",
                delimiter=",",
                header="label,predicted",
                comments="",
            )
        if process is not None:
            (seed_dir / "process.json").write_text(json.dumps(process))
        (folder / "results.json").write_text(json.dumps(r))


def three_seeds_with_predictions() -> list[dict]:
    """Keras misreads image 0 as a 1 in every seed; Lightning does too, and image 5 as a 6."""
    keras_pred, lightning_pred = LABELS.copy(), LABELS.copy()
    keras_pred[0] = lightning_pred[0] = 1
    lightning_pred[5] = 6
    accs = {"keras": (0.980, 0.982, 0.981), "lightning": (0.983, 0.981, 0.985)}
    preds = {"keras": keras_pred, "lightning": lightning_pred}
    return [
        fake_measured(fake_results(fw, s, accs[fw][s]), preds[fw], launched_at=1000.0 + s)
        for s in range(3)
        for fw in ("keras", "lightning")
    ]


def fake_runners(monkeypatch) -> list[dict]:
    """Replace mnist-compare's two child runs (and its data check) with fakes that write a
    finished run's folder; returns the calls, each as its framework and arguments."""
    from lightning_mnist.compare import runners

    calls: list[dict] = []

    def fake_run(framework):
        def run(run_dir, data_dir, seed, epochs, patience, quiet, config=None, extra=(), **where):
            calls.append(
                dict(framework=framework, seed=seed, epochs=epochs, patience=patience,
                     extra=tuple(extra), where=where)
            )  # fmt: skip
            write_fake_runs(run_dir.parents[1], [fake_results(framework, seed, 0.98)])
            return fake_results(framework, seed, 0.98)

        return run

    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr(runners, "run_keras", fake_run("keras"))
    monkeypatch.setattr(runners, "run_lightning", fake_run("lightning"))
    return calls
