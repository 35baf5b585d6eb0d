"""``mnist-compare``: the tutorial in Keras and in Lightning, seed by seed, then a report.

Each run is a child process, Keras first and then Lightning for every seed, never two at
once, so each framework has every core (docs/parity.md #12). lightning_mnist never imports
Keras or TensorFlow: the Keras side runs as ``python -m keras_reference``.

The report folder (``--out``) gets ``runs/keras-seed<S>/`` (Keras's run folder),
``runs/lightning-seed<S>/version_0/`` (Lightning's), a ``run.log`` of each child's output and
a ``process.json`` (its launch time and wall seconds), ``settings.json`` and the report:
``report.json``, ``report.md`` and the ``compare_*.png`` pictures (``report`` builds it from
the saved runs, ``markdown`` and ``plots`` write it). The runs themselves: ``runners``.

Folder policy: an existing, non-empty ``--out`` is refused with one line, so a finished
comparison is never overwritten. ``--resume`` continues an interrupted one (same settings,
finished runs are kept) and ``--report_only`` rewrites only the report files from the saved runs.
``mnist-compare --bench ...`` runs the speed benchmark instead (``bench``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, Namespace

from lightning_mnist.atomic import write_atomic
from lightning_mnist.compare.markdown import render_markdown
from lightning_mnist.compare.plots import write_plots
from lightning_mnist.compare.report import (
    DEFAULT_TARGET,
    REPORT_JSON,
    REPORT_MD,
    SETTINGS_JSON,
    ReportError,
    build_report,
    epoch_stats,
    report_json,
)
from lightning_mnist.compare.runners import (
    CompareError,
    check_data,
    check_gpu,
    exists_message,
    finished_results,
    run_keras,
    run_lightning,
)
from lightning_mnist.data.files import DATA_DIR_ENV, DEFAULT_DATA_DIR, default_data_dir

# Each recipe in both frameworks: its max epochs and EarlyStopping patience.
PRESETS = {"tutorial": (100, 2), "improved": (15, 4)}
FRAMEWORKS = ("keras", "lightning")

RESUME_KEYS = (
    "preset",
    "seeds",
    "epochs",
    "patience",
    "frameworks",
    "dataset",
    "lightning_args",
    "accelerator",
)
DATASETS = ("mnist", "fashion_mnist")


def parse_args(argv: list[str] | None = None) -> Namespace:
    """Parse ``mnist-compare``'s arguments; the defaults are the tutorial's.

    Options the main CLI also has take its names (``--data.data_dir``, ``--data.dataset``,
    ``--trainer.max_epochs``, ``--trainer.accelerator``, ``--early_stopping.patience``,
    ``--config``); the earlier short names still work as aliases. Long because it is one
    ``add_argument`` per option, each with its help text, followed by the checks that need
    several options at once.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    p = ArgumentParser(
        prog="mnist-compare",
        description="Train the tutorial's CNN (or the improved preset's) with Keras and with "
        "Lightning over several seeds, one process at a time, and write a side-by-side report: "
        "accuracy with its 95% interval, agreement of the two models, per class, time, "
        "environment. "
        "`mnist-compare --bench --help` shows the speed benchmark.",
    )
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    p.add_argument(
        "--seeds_list",
        "--seeds-list",
        type=int,
        nargs="+",
        help="explicit seeds; overrides --seeds",
    )
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="tutorial",
        help="the recipe both frameworks run: the tutorial, or the improved network "
        "(configs/improved.yaml, keras_reference --preset improved)",
    )
    p.add_argument(
        "--trainer.max_epochs",
        "--epochs",
        dest="epochs",
        type=int | None,
        help="max epochs; null: the preset's (tutorial 100, improved 15)",
    )
    p.add_argument(
        "--early_stopping.patience",
        "--patience",
        dest="patience",
        type=int | None,
        help="EarlyStopping patience; null: the preset's (tutorial 2, improved 4)",
    )
    p.add_argument(
        "--data.data_dir",
        "--data-dir",
        dest="data_dir",
        help=f"holds MNIST/raw (IDX files), fetched and verified when missing; "
        f"null: $MNIST_DATA_DIR, else {DEFAULT_DATA_DIR}",
    )
    p.add_argument(
        "--data.dataset",
        "--dataset",
        dest="dataset",
        choices=DATASETS,
        default="mnist",
        help="MNIST or Fashion-MNIST, fetched and verified like MNIST",
    )
    p.add_argument(
        "--trainer.accelerator",
        "--accelerator",
        dest="accelerator",
        choices=("cpu", "gpu"),
        default="cpu",
        help="where both frameworks train; gpu needs one that TensorFlow and torch both see",
    )
    p.add_argument("--out", default="reports/compare", help="new report folder")
    p.add_argument(
        "--frameworks",
        nargs="+",
        choices=FRAMEWORKS,
        default=list(FRAMEWORKS),
        help="which to run, Keras first",
    )
    p.add_argument(
        "--target_accuracy",
        "--target-accuracy",
        type=float | None,
        help="the validation accuracy whose time-to-reach is reported; "
        "null: 0.98 for mnist, 0.90 for fashion_mnist",
    )
    p.add_argument(
        "--config",
        help="Lightning preset: a YAML file or a shipped preset's name; null: --preset's",
    )
    p.add_argument(
        "--lightning_args",
        "--lightning-args",
        default="",
        help='more options for every Lightning run, e.g. "--model.conv_pool fused"',
    )
    p.add_argument("--resume", action="store_true", help="continue an interrupted --out")
    p.add_argument(
        "--report_only",
        "--report-only",
        action="store_true",
        help="rebuild the report of --out; trains nothing",
    )
    p.add_argument("--quiet", action="store_true", help="one line per run (logs keep the rest)")
    p.add_argument("--bench", action="store_true", help="run the speed benchmark instead")
    return _checked(p, p.parse_args(argv), argv)


def _checked(p: ArgumentParser, args: Namespace, argv: list[str] | None) -> Namespace:
    """The parsed arguments with the preset's defaults filled in and checked together."""
    args.argv = list(sys.argv[1:] if argv is None else argv)
    epochs, patience = PRESETS[args.preset]
    args.epochs = epochs if args.epochs is None else args.epochs
    args.patience = patience if args.patience is None else args.patience
    args.config = args.config or args.preset
    args.default_data_dir = args.data_dir is None
    args.data_dir = args.data_dir or default_data_dir()
    if args.seeds < 1 or args.epochs < 1 or args.patience < 0:
        p.error("--seeds and --trainer.max_epochs must be >= 1, --early_stopping.patience >= 0")
    if args.target_accuracy is None:
        args.target_accuracy = DEFAULT_TARGET[args.dataset]
    elif not 0.0 < args.target_accuracy <= 1.0:
        p.error("--target_accuracy is a share in (0, 1], e.g. 0.98")
    args.seeds = sorted(set(args.seeds_list)) if args.seeds_list else list(range(args.seeds))
    args.frameworks = [f for f in FRAMEWORKS if f in args.frameworks]  # Keras first
    return args


def main(argv: list[str] | None = None) -> int:
    """Console script ``mnist-compare``; returns the exit status.

    Args:
        argv: The arguments without the program name; None reads ``sys.argv``.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--bench" in argv:
        from lightning_mnist.compare.bench import main as bench_main

        return bench_main([a for a in argv if a != "--bench"])
    args = parse_args(argv)
    try:
        report = compare(args)
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; continue with: mnist-compare --resume --out {args.out}",
            file=sys.stderr,
        )
        return 130
    print(summary_line(report))
    print(f"Report: {Path(args.out) / 'report.md'}")
    return 0


def compare(args: Namespace) -> dict[str, Any]:
    """Run every (seed, framework) pair not yet finished, then write the report.

    Args:
        args: From :func:`parse_args`.
    """
    out = Path(args.out)
    if args.report_only:
        if not out.is_dir():
            raise CompareError(f"{out} does not exist; --report_only rebuilds an existing --out")
        return _write(out, None)
    settings = _settings(args)
    if args.resume:
        settings = _resumed_settings(out, settings)
    elif out.exists() and any(out.iterdir()):
        raise CompareError(exists_message(out, "or pass --resume / --report_only"))
    plan = [(seed, fw) for seed in args.seeds for fw in args.frameworks]
    pending = [(s, f) for s, f in plan if not finished_results(out / "runs" / f"{f}-seed{s}")]
    if any(fw == "keras" for _, fw in pending) and importlib.util.find_spec("keras") is None:
        raise CompareError(
            "the Keras runs need TensorFlow and Keras: pip install 'lightning-mnist[keras]', "
            "or pass --frameworks lightning"
        )
    if pending:
        # Before anything is written: a bad data dir or a missing GPU leaves no folder.
        check_data(args.data_dir, args.dataset, create=args.default_data_dir)
        if args.accelerator == "gpu":
            check_gpu({fw for _, fw in pending})
    if not args.resume:
        out.mkdir(parents=True, exist_ok=True)
        (out / SETTINGS_JSON).write_text(json.dumps(settings, indent=2) + "\n")
    for seed, fw in plan:
        run = out / "runs" / f"{fw}-seed{seed}"
        if (seed, fw) in pending:
            print(run_line(run_one(args, fw, seed, run)))
        else:
            print(f"[{fw} s{seed}] already finished in {run}; kept")
    if pending:
        settings["loadavg_end"] = os.getloadavg()[0]
        write_atomic(out / SETTINGS_JSON, (json.dumps(settings, indent=2) + "\n").encode())
    return _write(out, settings)


def run_one(args: Namespace, fw: str, seed: int, run: Path) -> dict[str, Any]:
    """Train one framework with one seed into ``run``; its results."""
    common = (run, args.data_dir, seed, args.epochs, args.patience, args.quiet)
    where = {"dataset": args.dataset, "accelerator": args.accelerator}
    if fw == "keras":
        return run_keras(*common, extra=("--preset", args.preset), **where)
    extra = tuple(shlex.split(args.lightning_args))
    return run_lightning(*common, config=args.config, extra=extra, **where)


def _write(out: Path, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Build the report from the saved runs and write report.json, report.md and pictures."""
    try:
        report = build_report(out, settings)
    except ReportError as e:
        raise CompareError(str(e)) from None
    write_plots(report, out)
    # Written through a temp file and a rename: no half-written report if interrupted.
    write_atomic(out / REPORT_JSON, report_json(report).encode())
    write_atomic(out / REPORT_MD, render_markdown(report).encode())
    return report


def _settings(args: Namespace) -> dict[str, Any]:
    return {
        "preset": args.preset,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "patience": args.patience,
        "frameworks": args.frameworks,
        "dataset": args.dataset,
        "accelerator": args.accelerator,
        "target_accuracy": args.target_accuracy,
        # A report may be shared: the data dir from the environment is named, not spelled out.
        "data_dir": f"${DATA_DIR_ENV}"
        if args.default_data_dir and os.environ.get(DATA_DIR_ENV)
        else str(args.data_dir),
        "config": str(args.config),
        "lightning_args": args.lightning_args,
        "command": shlex.join(["mnist-compare", *args.argv]),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg()[0],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _resumed_settings(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The settings an interrupted comparison in ``out`` started with, if ``settings`` match.

    Raises:
        CompareError: when ``out`` holds no earlier comparison, or one with other settings.
    """
    saved_path = out / SETTINGS_JSON
    if not saved_path.exists():
        raise CompareError(f"{saved_path} not found; --resume continues an earlier --out")
    saved = json.loads(saved_path.read_text())
    # A comparison started before an option existed ran with its default.
    before = {"lightning_args": "", "accelerator": "cpu", "preset": "tutorial"}
    diff = [k for k in RESUME_KEYS if saved.get(k, before.get(k)) != settings[k]]
    if diff:
        wanted = " ".join(f"{k}={saved.get(k)}" for k in diff)
        raise CompareError(f"{out} was started with {wanted}; resume with the same settings")
    return saved  # the report describes the comparison as it was started


def run_line(results: dict[str, Any]) -> str:
    """One line for a finished run.

    Args:
        results: A results.json dict.
    """
    secs = epoch_stats(results["epoch_seconds"])["median"]
    return (
        f"{results['framework']:<9} seed {results['seed']}: {results['epochs_run']} epochs "
        f"(best {results['best_epoch']}), test accuracy {100 * results['test_accuracy']:.2f}%, "
        f"test loss {results['test_loss']:.4f}, {secs:.2f} s/epoch, "
        f"fit {results['fit_seconds']:.0f} s"
    )


def summary_line(report: dict[str, Any]) -> str:
    """The mean test accuracies and their difference, in one line.

    Args:
        report: From :func:`lightning_mnist.compare.report.build_report`.
    """
    s = report["summary"]
    parts = [
        f"{fw} {100 * per['test_accuracy']['mean']:.2f}% (n={per['runs']})"
        for fw, per in s["frameworks"].items()
    ]
    if s["test_accuracy_diff_pp"] is not None:
        parts.append(f"Lightning - Keras {s['test_accuracy_diff_pp']:+.2f} pp")
    return "Mean test accuracy: " + ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
