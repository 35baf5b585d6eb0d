"""``mnist-compare``: the tutorial in Keras and in Lightning, seed by seed, then a report.

Each run is a child process (``runners``), Keras first, one at a time, into
``--out/runs/<framework>-seed<S>/`` with its ``run.log`` and ``process.json``; beside ``runs/`` go
``settings.json``, ``report.json``, ``report.md`` and ``compare_*.png``. A non-empty ``--out`` is
refused (nothing finished is overwritten) unless ``--resume`` or ``--report_only`` is asked for.
"""

import importlib.util
import os
import shlex
import time
from pathlib import Path
from typing import Any, Literal

from jsonargparse.typing import PositiveFloat, PositiveInt

from lightning_mnist.atomic import write_atomic, write_json
from lightning_mnist.compare import report as reports
from lightning_mnist.compare import runners
from lightning_mnist.compare.command import run_command
from lightning_mnist.compare.markdown import render_markdown
from lightning_mnist.compare.options import Data, EarlyStopping, Plan, Trainer
from lightning_mnist.compare.plots import write_plots
from lightning_mnist.compare.runners import CompareError
from lightning_mnist.data.catalogue import DATA_DIR_ENV
from lightning_mnist.presets import preset_facts

Framework = Literal["keras", "lightning"]
FRAMEWORKS: tuple[Framework, ...] = ("keras", "lightning")
RESUME_KEYS = ("preset", "seeds", "epochs", "patience", "frameworks", "dataset")
RESUME_KEYS += ("lightning_args", "accelerator", "paired")
RESUME_DEFAULTS = {"paired": False}  # settings.json written before the key existed
TRAINER, EARLY_STOPPING, DATA = Trainer(), EarlyStopping(), Data()  # the defaults
INITIAL_WEIGHTS = "initial.weights.h5"  # keras_reference.tutorial.INITIAL_WEIGHTS_NAME


def mnist_compare(
    seeds: PositiveInt = 5,
    seeds_list: list[int] | None = None,
    preset: Literal["tutorial", "improved"] = "tutorial",
    trainer: Trainer = TRAINER,
    early_stopping: EarlyStopping = EARLY_STOPPING,
    data: Data = DATA,
    out: str = "reports/compare",
    frameworks: tuple[Framework, ...] = FRAMEWORKS,
    target_accuracy: float | None = None,
    config: str | None = None,
    lightning_args: str = "",
    resume: bool = False,
    report_only: bool = False,
    quiet: bool = False,
    paired: bool = False,
    margin_pp: PositiveFloat = 0.2,
    command: str = "mnist-compare",
) -> dict[str, Any]:
    """Train the tutorial's CNN (or the improved preset's) with Keras and with Lightning over
    several seeds, one process at a time, and write a side-by-side report: accuracy with its 95%
    interval, agreement, per class, time, environment. The speed benchmark is ``mnist-bench``.

    Args:
        seeds: Seeds 0..N-1.
        seeds_list: Explicit seeds, e.g. [0,3,7]; overrides --seeds.
        preset: The recipe both frameworks run (improved: configs/improved.yaml).
        trainer: The Trainer options of both frameworks.
        early_stopping: EarlyStopping on val_loss in both frameworks.
        data: The images both frameworks train on.
        out: The new report folder.
        frameworks: Which to run, Keras first, e.g. [lightning].
        target_accuracy: Val accuracy whose time-to-reach is reported; null: 0.98 (fashion 0.90).
        config: Lightning preset: a YAML file or a shipped preset's name; null: --preset's.
        lightning_args: More options for every Lightning run, e.g. "--model.conv_pool fused".
        resume: Continue an interrupted --out.
        report_only: Rebuild the report of --out; trains nothing.
        quiet: One line per run (the logs keep the rest).
        paired: Lightning starts from Keras's initial weights and sees its batch order (dropout
            stays independent); the report adds paired tests. Tutorial preset, both frameworks.
        margin_pp: The equivalence margin (± pp) that the report tests Lightning − Keras test
            accuracy against, with the seeds it would need.
        command: The command line, recorded in settings.json.
    """
    plan = _plan(**locals())  # every option above, by name
    report = compare(plan)
    print(summary_line(report), f"Report: {plan.out / reports.REPORT_MD}", sep="\n")
    return report


def _plan(
    *,
    seeds,
    seeds_list,
    preset,
    trainer,
    early_stopping,
    data,
    out,
    frameworks,
    target_accuracy,
    config,
    **passed,
) -> Plan:
    """``mnist_compare``'s options, checked, with the preset's facts filled in; ``passed``:
    those that go to the plan as they are."""
    if target_accuracy is not None and not 0.0 < target_accuracy <= 1.0:
        raise CompareError("--target_accuracy is a share in (0, 1], e.g. 0.98")
    if passed["paired"] and (preset != "tutorial" or set(frameworks) != set(FRAMEWORKS)):
        # The tutorial network's initial weights move from Keras to Lightning.
        raise CompareError(
            "--paired needs both frameworks and the tutorial preset (its weights move from "
            "Keras to Lightning); drop --frameworks / --preset improved"
        )
    facts = preset_facts(preset)
    return Plan(
        out=Path(out),
        seeds=sorted(set(seeds_list)) if seeds_list else list(range(seeds)),
        frameworks=[f for f in FRAMEWORKS if f in frameworks],  # Keras first
        preset=preset,
        epochs=trainer.max_epochs or facts["max_epochs"],
        patience=facts["patience"] if early_stopping.patience is None else early_stopping.patience,
        data=data,
        accelerator=trainer.accelerator,
        target_accuracy=target_accuracy or reports.DEFAULT_TARGET[data.dataset],
        config=config or preset,
        **passed,  # lightning_args, resume, report_only, quiet, paired, margin_pp, command
    )


def main(argv: list[str] | None = None) -> int:
    """Console script ``mnist-compare``; returns the exit status."""
    return run_command(mnist_compare, "mnist-compare", argv)


def compare(plan: Plan) -> dict[str, Any]:
    """Run every (seed, framework) pair not yet finished, then write the report."""
    out = plan.out
    if plan.report_only:
        if not out.is_dir():
            raise CompareError(f"{out} does not exist; --report_only rebuilds an existing --out")
        return _write_report(out, None, plan.margin_pp)
    settings = _settings(plan)
    if plan.resume:
        settings = _resumed_settings(out, settings)
    else:
        runners.refuse_existing(out, ", or pass --resume true / --report_only true")
    runs = [(s, fw, out / "runs" / f"{fw}-seed{s}") for s in plan.seeds for fw in plan.frameworks]
    pending = [(s, fw) for s, fw, run in runs if not runners.finished_results(run)]
    _check_before_runs(plan, {fw for _, fw in pending})
    if not plan.resume:
        write_json(out / reports.SETTINGS_JSON, settings)
    for seed, fw, run in runs:
        if (seed, fw) in pending:
            print(run_line(run_one(plan, fw, seed, run)))
        else:
            print(f"[{fw} s{seed}] already finished in {run}; kept")
    if pending:
        settings["loadavg_end"] = os.getloadavg()[0]
        write_json(out / reports.SETTINGS_JSON, settings)
    return _write_report(out, settings, plan.margin_pp)


def _check_before_runs(plan: Plan, frameworks: set[str]) -> None:
    """Keras installed, the data good, the GPU there: checked before anything is written."""
    if "keras" in frameworks and importlib.util.find_spec("keras") is None:
        raise CompareError(
            "the Keras runs need TensorFlow and Keras: pip install 'lightning-mnist[keras]', "
            "or pass --frameworks [lightning]"
        )
    if frameworks:
        runners.check_data(plan.data_dir, plan.data.dataset, create=plan.data.data_dir is None)
        if plan.accelerator == "gpu":
            runners.check_gpu(frameworks)


def run_one(plan: Plan, fw: str, seed: int, run: Path) -> dict[str, Any]:
    """Train one framework with one seed into ``run``; its results."""
    common = (run, plan.data_dir, seed, plan.epochs, plan.patience, plan.quiet)
    where = {"dataset": plan.data.dataset, "accelerator": plan.accelerator}
    if fw == "keras":  # --paired: the seeded batch order, and the start Lightning loads
        paired = ("--shuffle", "seeded", "--save_initial_weights", "true") if plan.paired else ()
        return runners.run_keras(*common, extra=("--preset", plan.preset, *paired), **where)
    extra = tuple(shlex.split(plan.lightning_args))
    if plan.paired:  # Keras ran first for this seed and left its initial weights
        start = plan.out / "runs" / f"keras-seed{seed}" / INITIAL_WEIGHTS
        extra += ("--init_weights", str(start))
    return runners.run_lightning(*common, config=plan.config, extra=extra, **where)


def _write_report(out: Path, settings: dict[str, Any] | None, margin: float) -> dict[str, Any]:
    """Build the report from the saved runs; write report.json, report.md and the pictures."""
    report = reports.build_report(out, settings, margin)
    write_plots(report, out)
    write_atomic(out / reports.REPORT_JSON, reports.report_json(report).encode())
    write_atomic(out / reports.REPORT_MD, render_markdown(report).encode())
    return report


def _settings(plan: Plan) -> dict[str, Any]:
    from_env = plan.data.data_dir is None and os.environ.get(DATA_DIR_ENV)
    return {
        "preset": plan.preset,
        "seeds": plan.seeds,
        "epochs": plan.epochs,
        "patience": plan.patience,
        "frameworks": plan.frameworks,
        "dataset": plan.data.dataset,
        "accelerator": plan.accelerator,
        "target_accuracy": plan.target_accuracy,
        # A report may be shared: the data dir from the environment is named, not spelled out.
        "data_dir": f"${DATA_DIR_ENV}" if from_env else str(plan.data_dir),
        "config": str(plan.config),
        "lightning_args": plan.lightning_args,
        "paired": plan.paired,
        "command": plan.command,
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _resumed_settings(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings the interrupted comparison in ``out`` started with, if ``settings`` match."""
    saved_path = out / reports.SETTINGS_JSON
    if not saved_path.exists():
        raise CompareError(f"{saved_path} not found; --resume continues an earlier --out")
    saved = reports.read_json(saved_path)
    diff = [k for k in RESUME_KEYS if saved.get(k, RESUME_DEFAULTS.get(k)) != settings[k]]
    if diff:
        wanted = " ".join(f"{k}={saved.get(k)}" for k in diff)
        raise CompareError(f"{out} was started with {wanted}; resume with the same settings")
    return saved  # the report describes the comparison as it was started


def run_line(results: dict[str, Any]) -> str:
    """One line for a finished run, from its results.json."""
    secs = reports.epoch_stats(results["epoch_seconds"])["median"]
    return (
        f"{results['framework']:<9} seed {results['seed']}: {results['epochs_run']} epochs "
        f"(best {results['best_epoch']}), test accuracy {100 * results['test_accuracy']:.2f}%, "
        f"test loss {results['test_loss']:.4f}, {secs:.2f} s/epoch, "
        f"fit {results['fit_seconds']:.0f} s"
    )


def summary_line(report: dict[str, Any]) -> str:
    """The mean test accuracies and their difference, in one line."""
    s = report["summary"]
    parts = [
        f"{fw} {100 * per['test_accuracy']['mean']:.2f}% (n={per['runs']})"
        for fw, per in s["frameworks"].items()
    ]
    if s["test_accuracy_diff_pp"] is not None:
        parts.append(f"Lightning - Keras {s['test_accuracy_diff_pp']:+.2f} pp")
    return "Mean test accuracy: " + ", ".join(parts)


if __name__ == "__main__":
    raise SystemExit(main())
