"""Break a documented promise on purpose, one at a time, and check that the tests notice.

Each mutation replaces one exact string in one file of a temporary copy of the repository
(the working tree's tracked and untracked, not ignored files) and runs the tests named for it;
it is *caught* when they fail. The script stops with an error when a string to replace is
not found, so a mutation cannot go stale quietly. It is not part of the test suite and does
not run in CI (it runs the named tests once per mutation: minutes, not seconds).

    python benchmarks/mutations.py              # all mutations, then a table
    python benchmarks/mutations.py --list       # names only
    python benchmarks/mutations.py --only keras-md5 system-eps --baseline

Real-data tests read ``$MNIST_DATA_DIR`` as the suite does. ``--baseline`` first runs every
named test on the unmutated copy: they must pass, or a "caught" would mean nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """One broken promise: in ``file``, ``old`` (exactly once) becomes ``new``."""

    name: str
    promise: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


CLI = "tests/test_cli.py"
NATIVE = "tests/test_lightning_native.py"
ONE_STEP = "tests/parity/test_one_step.py"
DATA = "tests/data/test_data.py"
VERIFY = "tests/data/test_verify.py"

MUTATIONS = (
    Mutation(
        "best-checkpoint",
        "fit tests the best checkpoint, not the last weights",
        "lightning_mnist/run/record.py",
        'ckpt_path="best" if best else None',
        'ckpt_path="last" if best else None',
        (f"{CLI}::test_results_keep_every_epoch_when_the_best_is_not_the_last",),
    ),
    Mutation(
        "last-checkpoint",
        "last.ckpt holds the latest epoch, also one that saved no best",
        "lightning_mnist/run/checkpointing.py",
        "            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))",
        "            pass",
        (f"{CLI}::test_results_keep_every_epoch_when_the_best_is_not_the_last",),
    ),
    Mutation(
        "export-untrained",
        "export writes the checkpoint's trained network",
        "lightning_mnist/interop/export.py",
        "    model.load_state_dict(system.model.state_dict())\n",
        "",
        ("tests/test_export.py::test_export_of_an_improved_checkpoint[exported-program]",),
    ),
    Mutation(
        "keras-md5",
        "the Keras reference checks the official MNIST MD5s",
        "keras_reference/data.py",
        "if md5 is not None and hashlib.md5(buf).hexdigest() != md5:",
        "if False:",
        (
            "tests/test_keras_reference.py::"
            "test_a_flipped_byte_behind_an_intact_header_fails_the_md5",
        ),
    ),
    Mutation(
        "fetch-unverified",
        "fetched files are verified before they are renamed into place",
        "lightning_mnist/data/fetch.py",
        "                    read_idx(temps[raw / f.name], f, spec.num_classes, f.md5)",
        "                    pass",
        (
            "tests/data/test_fetch.py::"
            "test_fetched_bytes_that_fail_the_file_check_are_never_installed",
        ),
    ),
    Mutation(
        "system-eps",
        "MNISTClassifier's own Adam has Keras's eps 1e-7",
        "lightning_mnist/system.py",
        "betas=(0.9, 0.999), eps=1e-7)",
        "betas=(0.9, 0.999), eps=1e-8)",
        (
            f"{NATIVE}::test_the_systems_own_optimizer_is_keras_adam",
            f"{ONE_STEP}::test_the_step_is_adam_with_keras_settings[system]",
        ),
    ),
    Mutation(
        "preset-eps",
        "the tutorial preset's Adam has Keras's eps 1e-7",
        "configs/tutorial.yaml",
        "eps: 1.0e-07 ",
        "eps: 1.0e-08 ",
        (f"{ONE_STEP}::test_the_step_is_adam_with_keras_settings[preset]",),
    ),
    Mutation(
        "system-betas",
        "MNISTClassifier's own Adam has Keras's betas (0.9, 0.999)",
        "lightning_mnist/system.py",
        "betas=(0.9, 0.999), eps=1e-7)",
        "betas=(0.9, 0.99), eps=1e-7)",
        (f"{NATIVE}::test_the_systems_own_optimizer_is_keras_adam",),
    ),
    Mutation(
        "preset-lr",
        "the tutorial preset's Adam has Keras's lr 1e-3",
        "configs/tutorial.yaml",
        "    lr: 0.001\n",
        "    lr: 0.002\n",
        (f"{ONE_STEP}::test_the_step_is_adam_with_keras_settings[preset]",),
    ),
    Mutation(
        "split-first-fraction",
        "validation is the LAST 20% of the training files, as Keras takes it",
        "lightning_mnist/data/module.py",
        "    return range(0, split_at), range(split_at, n)",
        "    return range(n - split_at, n), range(0, n - split_at)",
        (f"{DATA}::test_keras_split_takes_the_last_fraction",),
    ),
    Mutation(
        "split-size",
        "the split point is floor(n * (1 - validation_split))",
        "lightning_mnist/data/module.py",
        "    split_at = int(n * (1.0 - validation_split))",
        "    split_at = round(n * (1.0 - validation_split)) + 1",
        (f"{DATA}::test_keras_split_takes_the_last_fraction",),
    ),
    Mutation(
        "preprocess-256",
        "pixels are divided by 255, as the tutorial does",
        "lightning_mnist/data/module.py",
        "    x = x.div_(255.0).unsqueeze(1)",
        "    x = x.div_(256.0).unsqueeze(1)",
        (f"{DATA}::test_to_tensor_matches_the_tutorial_preprocessing",),
    ),
    Mutation(
        "init-not-glorot",
        "kernels start Glorot-uniform, as Keras initialises them",
        "lightning_mnist/model.py",
        "            nn.init.xavier_uniform_(layer.weight)",
        "            nn.init.kaiming_uniform_(layer.weight)",
        ("tests/test_model.py::test_keras_initialisation_is_glorot_uniform_with_zero_bias",),
    ),
    Mutation(
        "init-bias",
        "biases start at zero, as Keras initialises them",
        "lightning_mnist/model.py",
        "                nn.init.zeros_(layer.bias)",
        "                nn.init.constant_(layer.bias, 0.01)",
        ("tests/test_model.py::test_keras_initialisation_is_glorot_uniform_with_zero_bias",),
    ),
    Mutation(
        "flatten-nchw",
        "the flatten is in Keras's NHWC order",
        "lightning_mnist/model.py",
        "        return x.permute(0, 2, 3, 1).flatten(1)",
        "        return x.flatten(1)",
        ("tests/parity/test_forward_equivalence.py::test_keras_to_torch[trained]",),
    ),
    Mutation(
        "patience-3",
        "EarlyStopping(patience=2) on val_loss, as the tutorial",
        "configs/tutorial.yaml",
        "    patience: 2",
        "    patience: 3",
        (f"{CLI}::test_print_config_shows_the_tutorial_preset",),
    ),
    Mutation(
        "dropout-rate",
        "the tutorial network drops 50% before its last layer",
        "configs/tutorial.yaml",
        "  dropout: 0.5\n",
        "  dropout: 0.25\n",
        (f"{CLI}::test_print_config_shows_the_tutorial_preset",),
    ),
    Mutation(
        "epoch-mean-unweighted",
        "epoch losses are sample-weighted means, as Keras reports them",
        "lightning_mnist/system.py",
        "self._loss.add_(loss.detach(), alpha=y.shape[0])",
        "self._loss.add_(loss.detach())",
        (f"{NATIVE}::test_epoch_means_are_keras_sample_weighted_means",),
    ),
    Mutation(
        "ddp-same-shard",
        "each DDP rank trains on its own part of every global batch",
        "lightning_mnist/data/batches.py",
        "[shard(b, self.rank, self.world_size) for b in order.split(self.batch_size)]",
        "[b[: self.local_batch] for b in order.split(self.batch_size)]",
        (f"{DATA}::test_ranks_share_each_epoch_without_overlap",),
    ),
    Mutation(
        "reshuffle-ignores-epoch",
        "the training order is reshuffled every epoch",
        "lightning_mnist/data/batches.py",
        "default_rng([seed, epoch])",
        "default_rng([seed, 0])",
        (f"{DATA}::test_training_order_is_reshuffled_each_epoch_and_reproducible",),
    ),
    Mutation(
        "full-unpickler",
        "checkpoints are loaded weights-only: a pickle cannot run code",
        "lightning_mnist/checkpoints.py",
        'ckpt = torch.load(path, map_location="cpu", weights_only=True)',
        'ckpt = torch.load(path, map_location="cpu", weights_only=False)',
        ("tests/test_hostile.py::test_hostile_input_gets_one_line[malicious-ckpt-test]",),
    ),
    Mutation(
        "checkpoint-not-atomic",
        "a checkpoint is written whole or not at all",
        "lightning_mnist/run/checkpointing.py",
        "        write_atomic(Path(path), buffer.getbuffer())",
        "        Path(path).write_bytes(buffer.getbuffer())",
        (
            "tests/test_robustness.py::test_a_failed_checkpoint_write_keeps_the_previous_file",
            "tests/test_robustness.py::test_a_checkpoint_failing_at_fsync_keeps_the_previous_file",
        ),
    ),
    Mutation(
        "staged-leaves-temp",
        "a failed write leaves no temp file",
        "lightning_mnist/atomic.py",
        "            tmp.unlink(missing_ok=True)",
        "            pass",
        (f"{VERIFY}::test_write_atomic_leaves_nothing_on_failure",),
    ),
    Mutation(
        "data-no-size-check",
        "a truncated data file is refused, naming its size",
        "lightning_mnist/data/verify.py",
        "    if size != f.size:  # before reading",
        "    if False:  # before reading",
        (f"{VERIFY}::test_corruption_is_one_line_naming_the_file[truncated]",),
    ),
    Mutation(
        "data-no-label-check",
        "labels outside 0..9 are refused",
        "lightning_mnist/data/verify.py",
        "if f.magic == LABELS_MAGIC and arr.size and int(arr.max()) >= num_classes:",
        "if False:",
        (f"{VERIFY}::test_corruption_is_one_line_naming_the_file[label-10]",),
    ),
    Mutation(
        "data-no-md5",
        "a flipped byte in a data file is caught by its MD5",
        "lightning_mnist/data/verify.py",
        "    if md5 is not None and digest.hexdigest() != md5:",
        "    if False:",
        (f"{VERIFY}::test_corruption_is_one_line_naming_the_file[flipped-test-images]",),
    ),
    Mutation(
        "loss-smoothing",
        "the training loss is Keras's categorical cross-entropy, nothing added",
        "lightning_mnist/system.py",
        "loss = F.cross_entropy(logits, y)",
        "loss = F.cross_entropy(logits, y, label_smoothing=1e-4)",
        (f"{ONE_STEP}::test_loss_and_gradients[preset]",),
    ),
)


def copy_tree(dest: Path) -> None:
    """The working tree's files that git tracks or would track, copied under ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        src, out = REPO / name, dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():  # configs/ links to the package's presets
            out.symlink_to(os.readlink(src))
        elif src.is_file():  # a deleted but still tracked file is skipped
            shutil.copy2(src, out)


def apply(root: Path, m: Mutation) -> str:
    """Apply ``m`` in ``root``; return the original text. Exits when ``old`` is not there."""
    path = root / m.file
    text = path.read_text()
    count = text.count(m.old)
    if count != 1:
        sys.exit(f"mutation {m.name}: {m.old!r} occurs {count} times in {m.file}, expected once")
    path.write_text(text.replace(m.old, m.new))
    return text


def run_tests(root: Path, tests: tuple[str, ...]) -> tuple[int, float, str]:
    """pytest on ``tests`` in ``root``: exit status, seconds and the output's last lines."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-3:])
    return done.returncode, time.perf_counter() - t0, tail


def verdict(status: int) -> str:
    """pytest's exit status read as a mutation result (1: some test failed)."""
    return {0: "NOT CAUGHT", 1: "caught"}.get(status, f"error (pytest exit {status})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="first run the tests unmutated")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.only and (unknown := set(args.only) - {m.name for m in MUTATIONS}):
        sys.exit(f"unknown mutation(s): {sorted(unknown)}")
    if args.list:
        for m in chosen:
            print(f"{m.name:24} {m.promise}")
        return 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lightning-mnist-mutants-") as tmp:
        root = Path(tmp)
        copy_tree(root)
        if args.baseline and not baseline(root, chosen):
            return 2
        rows = [run_one(root, m) for m in chosen]
    print_table(rows, time.perf_counter() - start)
    return 0 if all(r[1] == "caught" for r in rows) else 1


def baseline(root: Path, chosen: list[Mutation]) -> bool:
    """Every named test passes on the unmutated copy."""
    tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    status, seconds, tail = run_tests(root, tests)
    print(f"baseline: {len(tests)} tests, pytest exit {status}, {seconds:.0f} s", flush=True)
    if status != 0:
        print(tail)
    return status == 0


def run_one(root: Path, m: Mutation) -> tuple[str, str, float]:
    """Apply ``m``, run its tests, restore the file; return (name, verdict, seconds)."""
    original = apply(root, m)
    try:
        status, seconds, tail = run_tests(root, m.tests)
    finally:
        (root / m.file).write_text(original)
    result = verdict(status)
    print(f"{m.name:24} {result:12} {seconds:6.1f} s", flush=True)
    if status not in (0, 1):
        print(tail)
    return m.name, result, seconds


def print_table(rows: list[tuple[str, str, float]], total: float) -> None:
    print("\n| mutation | result | seconds |\n|---|---|---|")
    for name, result, seconds in rows:
        print(f"| {name} | {result} | {seconds:.0f} |")
    caught = sum(r[1] == "caught" for r in rows)
    print(f"\n{caught}/{len(rows)} caught in {total:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
