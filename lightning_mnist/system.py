"""The LightningModule: loss, metrics with Keras's meaning, Keras's Adam, predict. LightningCLI
replaces that Adam when ``--optimizer`` / ``--lr_scheduler`` (or a preset's section) give one."""

import math

import lightning as L
import torch
import torch.nn.functional as F

from lightning_mnist.errors import ConfigError
from lightning_mnist.network import Arch, ConvPool, build_network


class EpochSums:
    """Keras's epoch metrics, the means over every sample seen (docs/parity.md #2), kept as sums
    in one device tensor (no host sync per step): loss x n, correct predictions, n, and the steps
    before the loss sum stopped being finite. Not a buffer: DDP would overwrite every rank's sums
    with rank 0's before each forward pass."""

    def __init__(self) -> None:
        self._allocate("cpu")

    def _allocate(self, device: torch.device | str) -> None:
        self.sums = torch.zeros(4, device=device)
        # Views made once: indexing ``sums`` each step would cost a view per slot per step.
        self._loss, self._correct, self._n, self._finite = self.sums.unbind(0)
        self.n = 0  # images this epoch, counted on the host (their count needs no sync)

    def update(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        if self.sums.device != loss.device:
            self._allocate(loss.device)
        self.n += y.shape[0]
        self._loss.add_(loss.detach(), alpha=y.shape[0])
        self._correct.add_((logits.detach().argmax(1) == y).sum())
        # A NaN or infinite loss makes the sum non-finite for good: this counts the steps
        # before the first such loss, the step to name if the epoch ends non-finite.
        self._finite.add_(self._loss.isfinite())

    def reset(self) -> None:
        self.sums.zero_()
        self.n = 0

    def compute(self, strategy) -> dict[str, float]:
        """The epoch's means over every rank, so each image counts once (one host sync); then
        reset. ``finite_steps`` is this rank's own count."""
        self._n.fill_(self.n)
        total = strategy.reduce(self.sums.clone(), reduce_op="sum")
        loss_sum, correct, n, _, finite_steps = torch.cat([total, self.sums[3:]]).tolist()
        self.reset()
        # Divided in float32, as Keras's means.
        loss, accuracy = (torch.tensor([loss_sum, correct]) / torch.tensor(n)).tolist()
        return dict(loss=loss, accuracy=accuracy, samples=n, finite_steps=int(finite_steps))


class MNISTClassifier(L.LightningModule):
    """The tutorial's CNN (or the improved preset's) trained on categorical cross-entropy.

    Args:
        filters: Convolution filters (improved: of the first block; the next two double).
        hidden: Units of the hidden dense layer.
        dropout: Dropout rate, in [0, 1).
        num_classes: Output classes (10 for MNIST and Fashion-MNIST, whose labels are 0..9).
        keras_init: Keras initialisation (Glorot-uniform kernels, zero biases).
        channels_last: Run convolutions in NHWC memory layout (faster on CPU).
        conv_pool: ``native`` (PyTorch's ops), ``fused`` (the opt-in CPU operator, an error
            where it cannot be built) or ``auto`` (fused where it can); tutorial network only.
        arch: ``tutorial`` or ``improved`` (three conv blocks with batch norm).
        convs: Conv layers (1 or 2) in each of the improved network's three blocks.
    """

    def __init__(
        self,
        filters: int = 32,
        hidden: int = 32,
        dropout: float = 0.5,
        num_classes: int = 10,
        keras_init: bool = True,
        channels_last: bool = True,
        conv_pool: ConvPool = "native",
        arch: Arch = "tutorial",
        convs: tuple[int, int, int] = (1, 1, 1),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.model = build_network(
            arch, filters, hidden, dropout, num_classes, keras_init, convs, conv_pool
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.epoch_metrics: dict[str, float] = {}  # the latest epoch means, as floats
        self.means = {stage: EpochSums() for stage in ("fit", "val", "test")}
        # The model summary shows each layer's input and output shape, as Keras's does.
        self.example_input_array = torch.zeros(1, 1, 28, 28)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Inputs in the weights' dtype: a "-true" precision converts the weights, while the
        # model summary's example and the run's own measurements pass float32 (a no-op else).
        return self.model(x.to(self.dtype).contiguous(memory_format=self.memory_format))

    def _step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        # Cross-entropy on logits with integer labels == Keras's softmax + categorical_crossentropy.
        loss = F.cross_entropy(logits, y)
        self.means[stage].update(loss, logits, y)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._step(batch, "fit")
        # For loggers that plot training curves, only on the steps a logger writes: self.log
        # costs more than this network's step on a CPU.
        if self._logger_writes_this_step():
            self.log("train_loss_step", loss.detach(), on_step=True, on_epoch=False)
        return loss

    def _logger_writes_this_step(self) -> bool:
        """Whether Lightning writes this step's logged values; never for a step run by hand."""
        t = self._trainer  # None outside a Trainer, where the public property raises
        if t is None or not t.loggers or not t.log_every_n_steps:
            return False
        return bool(t.fast_dev_run) or (t.global_step + 1) % t.log_every_n_steps == 0

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        x, y = batch
        # Softmax only where probabilities are reported (docs/parity.md #6).
        probs = torch.softmax(self(x), dim=1)
        return {"pred": probs.argmax(1), "probs": probs, "label": y}

    def _log_epoch(self, stage: str) -> None:
        prefix = {"fit": "", "val": "val_", "test": "test_"}[stage]
        values = self.means[stage].compute(self.trainer.strategy)
        finite_steps = values.pop("finite_steps")
        if stage == "fit" and not math.isfinite(values["loss"]):
            self._stop_on_nonfinite(finite_steps)
        for name, value in values.items():
            self.epoch_metrics[prefix + name] = value
            if not self.trainer.barebones:  # barebones: no logging at all
                # Already summed over the ranks: every rank holds the same value.
                self.log(
                    prefix + name, value, prog_bar=name != "samples", on_step=False, on_epoch=True
                )

    def _stop_on_nonfinite(self, finite_steps: int) -> None:
        """Stop every rank (the reduced sum is the same on all) after an epoch whose loss was NaN
        or infinite, as Keras's TerminateOnNaN does."""
        steps = self.trainer.num_training_batches
        where = f" at step {finite_steps + 1}" if finite_steps < steps else " on another process"
        fix = "lower --optimizer.lr or check the data"
        if self.dtype == torch.float16:  # float16 weights and Adam moments overflow
            fix = "use --trainer.precision 16-mixed, which keeps float32 weights"
        raise ConfigError(
            f"the training loss became non-finite in epoch {self.current_epoch + 1}{where}; {fix}"
        )

    def on_train_epoch_start(self) -> None:
        # Only values measured in this epoch reach its history: a cut epoch's training means
        # stay unset, and the validation values are this epoch's last validation, if any.
        self.epoch_metrics = {}
        self.means["fit"].reset()
        # Dropout masks derive from (seed, epoch, rank): a resumed run draws the same ones.
        seed = (self._base_seed * 1_000_003 + self.current_epoch) * 1009 + self.global_rank
        torch.manual_seed(seed % 2**63)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.loaded_epoch = checkpoint.get("epoch")  # the tested checkpoint's, for the record
        states = checkpoint.get("optimizer_states") or [{}]
        group = (states[0].get("param_groups") or [{}])[0]
        if self.trainer.state.fn == "fit" and "lr" in group and self.trainer.is_global_zero:
            kept = ", ".join(f"{k} {group[k]}" for k in ("lr", "betas", "eps") if k in group)
            print(f"Resumed optimizer state: {kept} (--optimizer.* flags shape new runs only)")

    def on_fit_start(self) -> None:
        self._base_seed = torch.initial_seed()

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # The epoch's training means, logged before validation so that callbacks recording the
        # epoch in on_train_epoch_end (run before this module's own hook) see them.
        if batch_idx == self.trainer.num_training_batches - 1:
            self._log_epoch("fit")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            self.means["val"].reset()
        else:
            self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # Keras's Adam defaults; eps is 1e-7 there and 1e-8 in torch (docs/parity.md #3).
        return torch.optim.Adam(self.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
