"""report.md: the comparison's answers in order (accuracy with its interval, agreement, per
class, time, environment), one function per section, each reading the report dict only."""

import itertools
import math
import re
from typing import Any

from lightning_mnist.compare.md_table import md_table
from lightning_mnist.compare.paired_markdown import paired_section
from lightning_mnist.compare.plots import PLOTS
from lightning_mnist.compare.report import NAMES, ROW_KEYS
from lightning_mnist.compare.sections import PHASES
from lightning_mnist.presets import preset_facts

COLUMNS = ("epochs run", "best epoch", "val acc", "val loss", "test acc", "test loss")
COLUMNS += ("s/epoch (median)", "fit s")  # one per ROW_KEYS
# Decimals per ROW_KEYS column; accuracies have 2, in percent.
DIGITS = {"epochs_run": 1, "best_epoch": 1, "val_loss": 4, "test_loss": 4, "s_per_epoch": 2}
DIGITS["fit_seconds"] = 1


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report.md, from :func:`lightning_mnist.compare.report.build_report`."""
    parts = (_intro, _accuracy, paired_section, _agreement, _per_class, _time, _environment)
    text = "\n".join(p for p in (part(report) for part in parts) if p).rstrip() + "\n"
    count = itertools.count(1)  # number the sections present (one framework: no agreement)
    return re.sub(r"^## ", lambda _: f"## {next(count)}. ", text, flags=re.M)


def _blocks(*blocks: str) -> str:
    """Markdown blocks (paragraphs, tables), blank lines between, empty ones left out."""
    return "\n\n".join(b.rstrip("\n") for b in blocks if b) + "\n"


def _name(fw: str) -> str:
    return NAMES.get(fw, fw)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _cell(key: str, mean: float, std: float | None = None) -> str:
    """A run's value in ROW_KEYS column ``key``, or a mean over seeds and its std."""
    if isinstance(mean, int) and key in ("epochs_run", "best_epoch"):  # a run's: whole
        return str(mean)
    scale, unit, digits = (100, "%", 2) if key.endswith("accuracy") else (1, "", DIGITS[key])
    spread = f" ± {scale * std:.{digits}f}" if std is not None else ""
    return f"{scale * mean:.{digits}f}{spread}{unit}"


def _intro(report: dict[str, Any]) -> str:
    s = report["settings"]
    dataset = {"fashion_mnist": "Fashion-MNIST"}.get(s.get("dataset"), "MNIST")
    recipe = "the improved preset" if s.get("preset") == "improved" else "the tutorial"
    frameworks = dict.fromkeys(r["framework"] for r in report["runs"])
    names = " vs ".join(map(_name, frameworks)) or "Keras vs Lightning"
    title = f"# {names}: {recipe}{' side by side' * (len(frameworks) > 1)} ({dataset})"
    if not s:
        return _blocks(title)
    extra = f", Lightning options `{s['lightning_args']}`" if s.get("lightning_args") else ""
    batch = preset_facts(s.get("preset", "tutorial"))["batch_size"]
    settings = (
        f"Settings: preset {s.get('config', 'tutorial')}{extra}, at most {s.get('epochs')} "
        f"epochs, EarlyStopping(patience={s.get('patience')}) on val_loss, batch {batch}, "
        f"seeds {', '.join(map(str, s.get('seeds', [])))}, on {s.get('accelerator', 'cpu')}. "
        "Each framework ran in its own process, one after the other, with every core."
    )
    return _blocks(title, settings, s.get("command") and f"Command: `{s['command']}`")


def _accuracy(report: dict[str, Any]) -> str:
    rows, summary = report["rows"], report["summary"]
    table = md_table(
        ("framework", "seed", *COLUMNS),
        ([_name(r["framework"]), r["seed"], *(_cell(k, r[k]) for k in ROW_KEYS)] for r in rows),
    )
    mean_table = md_table(
        ("framework", "runs", *COLUMNS),
        (
            [_name(fw), per["runs"], *(_cell(k, **per[k]) for k in ROW_KEYS)]
            for fw, per in summary["frameworks"].items()
        ),
    )
    interval, diff = report.get("accuracy_interval"), summary["test_accuracy_diff_pp"]
    verdict = [f"**{interval['text']}**", interval["seeds_needed_text"]] if interval else []
    if not interval and diff is not None:
        verdict.append(
            f"**Mean test accuracy, Lightning − Keras: {diff:+.2f} percentage points** (an "
            "interval needs at least 2 seeds per framework)."
        )
    return _blocks(
        "## Accuracy",
        table,
        "Mean ± std over seeds:",
        mean_table,
        *verdict,
        "val acc and val loss are those of the best epoch (lowest val_loss), whose checkpoint "
        "was tested on the test images. s/epoch is the median over the epochs after the first. "
        "± is the sample standard deviation over seeds (n − 1); the interval is Welch's "
        "(unequal variances), for the difference of the mean test accuracies.",
        f"![accuracy]({PLOTS['accuracy']})\n![loss]({PLOTS['loss']})",
        "Left: validation; right: training (running mean over the epoch, with dropout on, as "
        "Keras reports it). Line: mean over the seeds still running at that epoch, drawn while at "
        "least half of them run; band: ± one standard deviation; thin lines: single seeds; dots: "
        "each seed's best epoch. The y axis is zoomed to where the curves differ, so the first "
        "epochs may start below it.",
    )


def _agreement(report: dict[str, Any]) -> str:
    if not report.get("agreement"):
        return ""
    head = ("seed", "same prediction", "share", "both wrong (same wrong class)")
    head += ("only Keras wrong", "only Lightning wrong")
    table = md_table(head, map(_agreement_cells, report["agreement"]), all_right=True)
    yardstick = ""
    if within := report.get("agreement_within"):
        yard = "; ".join(
            f"{_name(fw)} {_pct(w['share_mean'])} ({w['pairs']} seed pair{'s' * (w['pairs'] > 1)})"
            for fw, w in within.items()
        )
        yardstick = (
            f"Yardstick: one framework with itself across consecutive seeds agrees on {yard}. "
            "Cross-framework agreement near that level means the frameworks differ no more "
            "than reseeding does."
        )
    return _blocks(
        "## Agreement of the two frameworks' models",
        "Each seed's best Keras model and best Lightning model on the same test images:",
        table,
        yardstick,
    )


def _agreement_cells(a: dict[str, Any]) -> list[object]:
    same = f"{a['same_prediction']:,} / {a['images']:,}"
    both_wrong = f"{a['both_wrong']} ({a['both_wrong_same_class']})"
    return [a["seed"], same, _pct(a["share"]), both_wrong, *(a[f"{fw}_only_wrong"] for fw in NAMES)]


def _per_class(report: dict[str, Any]) -> str:
    if not (per := report.get("per_class")):
        return ""
    fws = list(per)
    head = [f"{_name(fw)} (n={per[fw]['seeds']})" for fw in fws]
    head += ["Lightning − Keras"] if len(fws) == 2 else []
    classes = range(len(per[fws[0]]["class_accuracy_mean"]))
    return _blocks(
        "## Per class",
        f"![confusion matrices]({PLOTS['confusion']})",
        "Confusion matrices summed over the seeds (rows: true class, columns: predicted). "
        "Off-diagonal cells are the errors, coloured by count; the diagonal is grey.",
        md_table(
            ("class", *head), ([c, *_class_cells(per, fws, c)] for c in classes), all_right=True
        ),
        "Per-class accuracy: mean ± std over seeds of the share of each class right.",
    )


def _class_cells(per: dict[str, Any], fws: list[str], c: int) -> list[str]:
    """One class's accuracy per framework, and their difference when there are two."""
    means = [per[fw]["class_accuracy_mean"][c] for fw in fws]
    stds = [per[fw]["class_accuracy_std"][c] for fw in fws]
    cells = [_cell("accuracy", m, s) for m, s in zip(means, stds, strict=True)]
    return cells + ([f"{100 * (means[1] - means[0]):+.2f} pp"] if len(fws) == 2 else [])


def _secs(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _time(report: dict[str, Any]) -> str:
    time, per = report.get("time") or {}, report["summary"]["frameworks"]
    if not time:
        return ""
    target = f"{100 * next(iter(time.values()))['target']:.0f}%"
    head = ("framework", "s/epoch (median)", f"to {target} val acc (s, mean)", "reached")
    head += ("whole fit (s)", "inference, batch 1 (ms)", "inference, batch 256 (ms)")
    head += ("peak memory (MiB)",)
    return _blocks(
        "## Time",
        md_table(head, (_time_cells(fw, t, per[fw]) for fw, t in time.items())),
        f"Time to {target}: the training seconds (epoch times, training plus validation) until "
        "the first epoch whose validation accuracy reached it, over the seeds that reached it. "
        "Whole fit: the mean over seeds, which also depends on when early stopping ended each "
        "run. Inference: median milliseconds of one forward pass of the best model in eval mode "
        "(Keras: `predict_on_batch`; torch: the module's call under `inference_mode`), median "
        "over seeds. Peak memory: the largest resident set of a run's process.",
        *_breakdown(time),
    )


def _time_cells(fw: str, t: dict[str, Any], p: dict[str, Any]) -> list[str]:
    lat = t["inference_ms"]
    return [
        _name(fw),
        f"{p['s_per_epoch']['mean']:.2f}",
        _secs(t["to_target_mean_s"]),
        f"{t['to_target_reached']}/{len(t['to_target'])}",
        f"{p['fit_seconds']['mean']:.1f}",
        _secs(lat.get("1"), 2),
        _secs(lat.get("256"), 2),
        _secs(t["peak_rss_mb"], 0),
    ]


def _breakdown(time: dict[str, Any]) -> list[str]:
    parts = [t["breakdown"] or {} for t in time.values()]
    if not any(parts):
        return []
    seeds = ", ".join(f"{_name(fw)} seed {t['breakdown_seed']}" for fw, t in time.items())
    rows = [
        [PHASES[phase], *(_secs(p.get(phase)) for p in parts)]
        for phase in PHASES
        if any(p.get(phase) is not None for p in parts)
    ]
    totals = [sum(v for v in p.values() if math.isfinite(v)) for p in parts]
    rows.append(["**whole process**", *(f"**{t:.1f}**" for t in totals)])
    table = md_table(("phase", *map(_name, time)), rows)
    return [f"Where one run's time went ({seeds}), in seconds:", table, f"![time]({PLOTS['time']})"]


def _environment(report: dict[str, Any]) -> str:
    env = report.get("environment") or {}
    lines = []
    for fw, e in env.get("frameworks", {}).items():
        vers = ", ".join(f"{k} {v}" for k, v in e.get("versions", {}).items())
        threads = ", ".join(
            f"{k} {v}" + (" (TensorFlow's default: one per logical CPU)" if v == 0 else "")
            for k, v in (e.get("threads") or {}).items()
        )
        cpu = e.get("cpu_model") and f"{e['cpu_model']} ({e.get('logical_cpus')} logical CPUs)"
        onednn = e.get("onednn") or ("on" if e.get("onednn_enabled") else None)
        found = {"CPU": cpu, "threads:": threads, "oneDNN": onednn}
        found |= {"BLAS": e.get("blas"), "GPU": e.get("gpu")}
        bits = [f"device {e.get('device', '?')}", *(f"{k} {v}" for k, v in found.items() if v)]
        lines.append(f"- {_name(fw)}: " + "; ".join(bits) + f"; {vers}{_speedups(report, fw)}")
    if (start := env.get("loadavg_start")) is not None:
        end = env.get("loadavg_end")
        after = f", {end:.1f} at the end" if end is not None else ""
        lines.append(
            f"- Machine: {env.get('cpu_count')} cores; 1-minute load average {start:.1f} at "
            f"the start{after} (the comparison itself keeps about one core's worth busy; much "
            "more means other work shared the cores and the timings are noisy)"
        )
    return _blocks("## Environment", "\n".join(lines))


def _speedups(report: dict[str, Any], fw: str) -> str:
    """Which conv path and opt-in settings a framework's runs used, from results.json."""
    run = next(r for r in report["runs"] if r["framework"] == fw)
    parts = [f"conv path {run['conv_path']}"] if "conv_path" in run else []
    parts += ["tune_malloc on"] if run.get("tune_malloc") else []
    parts += [f"jit_compile {run['jit_compile']}"] if "jit_compile" in run else []
    return f"; {', '.join(parts)}" if parts else ""
