"""The benchmark's Markdown (bench.md and the README's speed table), from a bench.json dict."""

from typing import Any

from lightning_mnist.compare.md_table import md_table
from lightning_mnist.presets import preset_facts

NAMES = {
    "keras": "Keras (tutorial)",
    "keras_xla": "Keras + XLA (jit_compile=True)",
    "lightning": "Lightning, tutorial preset (stock ops)",
    "lightning_fused": "Lightning, fast-cpu preset (fused op)",
    "torch": "plain PyTorch loop, stock ops",
    "torch_fused": "plain PyTorch loop, fused op",
}
PROBE_NAMES = {
    "plain_loop": "plain PyTorch loop",
    "minimal_module": "minimal LightningModule (loss only)",
    "project_system": "the project's MNISTClassifier",
}


def render_markdown(report: dict[str, Any]) -> str:
    """The speed table, the ratios, the per-step probe and how it was measured."""
    n, turns = report["epochs"], report["repeats"]
    timed = f"epochs 2–{n}" if n > 2 else "epoch 2"
    keras = report["frameworks"].get("keras")
    table = md_table(
        (f"{n} epochs ({timed} timed) × {turns} turns", "s/epoch median", "min turn", "max turn")
        + ("train samples/s", "vs Keras", "share of compute floor"),
        (
            [NAMES[fw], f"{r['median']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}"]
            + [f"{r['samples_per_s']:,.0f}", _fmt(keras and r["median"] / keras["median"])]
            + [f"{100 * r['floor_share']:.1f}%"]
            for fw, r in report["frameworks"].items()
        ),
    )
    return table + "\n".join(["", *_ratio_lines(report), *_probe_lines(report)]) + "\n"


def _ratio_lines(report: dict[str, Any]) -> list[str]:
    r, p, m = report["ratios"], report["probe"], report["machine"]
    steps = -(-report["train_samples"] // preset_facts("tutorial")["batch_size"])  # ceil
    malloc = "on" if report["tune_malloc"] else "off"
    return [
        f"Ratios of median s/epoch: Lightning / Keras {_fmt(r['lightning_keras'])}, Lightning "
        f"fast-cpu / Keras {_fmt(r['lightning_fused_keras'])}, Lightning fast-cpu / Keras + XLA "
        f"{_fmt(r['lightning_fused_keras_xla'])}; Lightning / the plain loop with the same ops: "
        f"stock {_fmt(r['lightning_torch'])}, fused {_fmt(r['lightning_fused_torch_fused'])}.",
        f"Every row ran in its own process with every core and the glibc allocator setting "
        f"(`--tune_malloc`) {malloc}; the rows ran in turns (A B C ... A B C ...), so min and "
        "max are the spread of the turns' medians.",
        f"An epoch is {steps} training steps over {report['train_samples']:,} images plus "
        f"validation over {report['val_samples']:,}; samples/s divides the training images by "
        f"that whole time. Compute floor: {report['train_flops_per_sample'] / 1e6:.2f} MFLOP per "
        f"training sample, {report['epoch_train_gflop']:.1f} GFLOP per epoch, at "
        f"{p['gflops']:.1f} GFLOP/s ({p['size']}² fp32 matmul on {p['device']}) = "
        f"{report['epoch_floor_s']:.3f} s.",
        f"Machine: {m['cpu_count']} cores ({m['processor']}), load average "
        f"{m['loadavg_before'][0]:.2f} before, {m['loadavg_after'][0]:.2f} after. "
        f"Command: `{report['command']}`.",
    ]


def _probe_lines(report: dict[str, Any]) -> list[str]:
    probe = report.get("step_probe")
    if not probe:
        return []
    rows = (
        [PROBE_NAMES[v], f"{med:.3f}", ", ".join(f"{t:.3f}" for t in probe["ms_per_step"][v])]
        for v, med in probe["median_ms"].items()
    )
    return [
        "",
        f"Per-step probe: one Linear layer, batch {probe['batch']}, {probe['threads']} thread, "
        f"{probe['steps']} steps per turn (the first {probe['warmup']} not timed):",
        "",
        md_table(("variant", "ms/step median", "turns"), rows).rstrip("\n"),
        "",
        f"The project's system costs {probe['system_over_minimal_ms']:+.3f} ms a step over the "
        f"minimal LightningModule; Lightning's loop {probe['minimal_over_plain_ms']:+.3f} ms "
        "over the plain loop.",
    ]


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
