"""The paired section of report.md (``mnist-compare --paired``): per seed, McNemar, the paired
interval and the equivalence test."""

from typing import Any

from lightning_mnist.compare.md_table import md_table
from lightning_mnist.compare.plots import PAIRED_PLOT

PAIRED_ABOUT = (
    "Each seed's Lightning run started from the initial weights of that seed's Keras run (moved "
    "by `interop/keras_weights.py`), and both trained on the same batches in the same order "
    "(NumPy's `default_rng([seed, epoch])`); the dropout masks were drawn independently, as in "
    "normal training."
)
MCNEMAR_ABOUT = (
    "McNemar: per seed, the exact two-sided binomial test on the test images exactly one of the "
    "two best models gets right (scipy.stats.binomtest), with the chi-square test with "
    "continuity correction beside it. p below 0.05 says that seed's two models differ in error "
    "rate; over {n} seeds at least one such p turns up by chance {chance:.0%} of the time "
    "(1 − 0.95^{n})."
)


def paired_section(report: dict[str, Any]) -> str:
    if not (paired := report.get("paired")):
        return ""
    w, eq = paired["interval"], paired["tost"]
    mcnemar = {m["seed"]: m for m in paired["mcnemar"]}
    head = ("seed", "Keras test acc", "Lightning test acc", "Lightning − Keras")
    head += ("only Keras right", "only Lightning right", "McNemar p (exact)", "p (χ², cc)")
    table = md_table(head, (_paired_cells(r, mcnemar.get(r["seed"])) for r in paired["seeds"]))
    verdict = "equivalent" if eq["equivalent"] else "not shown equivalent"
    interval = (
        f"**Paired difference, Lightning − Keras: {w['diff']:+.2f} pp, {100 * w['level']:.0f}% "
        f"CI [{w['low']:+.2f}, {w['high']:+.2f}] pp** (paired t over {w['df'] + 1} seeds, "
        f"{w['df']} df; standard deviation of the differences {w['sd']:.2f} pp)."
    )
    equivalence = (
        f"**Equivalence within ±{eq['margin']:g} pp: {verdict}** (two one-sided t tests at "
        f"{100 * eq['alpha']:g}%: p = {eq['p']:.3f}; the {100 * eq['level']:.0f}% interval "
        f"[{eq['low']:+.2f}, {eq['high']:+.2f}] pp must lie inside ±{eq['margin']:g} pp)."
    )
    parts = [PAIRED_ABOUT, table.rstrip("\n"), interval, equivalence, f"![paired]({PAIRED_PLOT})"]
    n = len(paired["seeds"])
    parts += [paired["seeds_needed_text"], MCNEMAR_ABOUT.format(n=n, chance=1 - 0.95**n)]
    return "### Paired runs: same start, same batch order\n\n" + "\n\n".join(parts) + "\n"


def _paired_cells(r: dict[str, Any], m: dict[str, Any] | None) -> list[object]:
    cells = [r["seed"], f"{r['keras']:.2f}%", f"{r['lightning']:.2f}%", f"{r['diff']:+.2f} pp"]
    if m is None:
        return [*cells, "–", "–", "–", "–"]
    return [
        *cells,
        m["only_a_right"],
        m["only_b_right"],
        f"{m['p_exact']:.3f}",
        f"{m['p_chi2']:.3f}",
    ]
