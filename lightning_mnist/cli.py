"""``lightning-mnist fit|validate|test|predict|export``; fit then tests the best checkpoint and
writes the run record. Every piece of a run (logger, callbacks, checkpoint writer, optimizer) is
config, so ``--print_config`` shows it and a user can change or remove it; the defaults are the
tutorial's (``configs/tutorial.yaml``)."""

import logging
import sys
import time
from contextlib import ExitStack
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lightning_mnist import checks
from lightning_mnist.checkpoints import check_compatible, read_checkpoint
from lightning_mnist.data.catalogue import get_spec
from lightning_mnist.data.module import MNISTDataModule
from lightning_mnist.errors import report_user_errors
from lightning_mnist.interop.start import start_from_keras
from lightning_mnist.ops.malloc import tune_malloc
from lightning_mnist.options import add_options, with_preset_paths
from lightning_mnist.parser_errors import argument_hint
from lightning_mnist.quiet import quiet_upstream
from lightning_mnist.run.folder import DEFAULT_ROOT, RunConfig
from lightning_mnist.run.plan import CALLBACK_GROUPS, plan_run, resolve_special_ckpt, say_batch
from lightning_mnist.run.progress import with_run_bar
from lightning_mnist.run.record import say_run_folder, test_and_record
from lightning_mnist.run.resume import SaveOnInterrupt
from lightning_mnist.system import MNISTClassifier

SPECIAL_CKPTS = ("best", "last", "hpc", "registry")
SUBCOMMANDS = ("fit", "validate", "test", "predict")
# export runs outside the Trainer: main() hands it to interop/export.py.
EXPORT_HELP = (
    "export: write a trained checkpoint as ONNX, TorchScript or an ExportedProgram, checked "
    "against the model (lightning-mnist export --help)"
)


class MNISTCLI(LightningCLI):
    """LightningCLI with the tutorial's run folder, callbacks and optimizer as config."""

    locks: ExitStack  # the run-folder locks this command holds, released by main()

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        add_options(parser)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        super().parse_arguments(parser, args)
        # A named checkpoint is opened here, weights only, before Lightning reads its
        # hyper-parameters: a missing, corrupt or code-carrying file gets one line.
        sub = self.config.get("subcommand")
        cfg = self.config[sub] if sub else self.config
        checks.check_settings(cfg, sub)  # before LightningCLI seeds
        resolve_special_ckpt(sub, cfg)
        ckpt, self._loaded = cfg.get("ckpt_path"), {}
        if ckpt and ckpt not in SPECIAL_CKPTS:
            self._loaded[ckpt] = read_checkpoint(ckpt, resumable=sub == "fit")
            hparams = self._loaded[ckpt].get("hyper_parameters") or {}
            given = sys.argv[1:] if args is None else list(args)
            checks.check_flags_against(hparams, given, cfg.model)

    def _cfg(self, config: Any) -> Any:
        """This command's part of a parsed config (all of it when run=False)."""
        return config[self.subcommand] if self.subcommand else config

    def before_instantiate_classes(self) -> None:
        cfg = self._cfg(self.config)
        if cfg.get("num_threads") is not None:
            torch.set_num_threads(cfg.num_threads)
        # config.yaml gets the config as given, not the paths filled in below, so that
        # `fit --config <run>/config.yaml` starts a new run instead of writing into this one.
        self.save_config_kwargs["config_as_given"] = deepcopy(cfg)
        cfg.tune_malloc = bool(cfg.get("tune_malloc")) and tune_malloc()  # what applied
        checks.check_root(Path(cfg.trainer.get("default_root_dir") or DEFAULT_ROOT))
        checks.check_optimizer(cfg.get("optimizer"))
        self.run_dir = plan_run(self.subcommand, cfg, self.locks)
        run = str(self.run_dir) if self.run_dir else None
        self.save_config_kwargs.update(save_to_log_dir=False, run_dir=run)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        # A removed callback group (`--early_stopping null`) is a no-op callback here.
        cfg = self._cfg(self.config_init)
        for key in CALLBACK_GROUPS:
            if cfg.get(key) is None:
                cfg[key] = Callback()
        if (callbacks := with_run_bar(cfg.get("trainer") or {})) is not None:
            kwargs["callbacks"] = callbacks
        return super().instantiate_trainer(**kwargs)

    def _check_ckpt(self) -> None:
        ckpt = self._cfg(self.config).get("ckpt_path")
        if ckpt and ckpt not in SPECIAL_CKPTS:
            check_compatible(ckpt, self.model, self._loaded.get(ckpt))

    def before_fit(self) -> None:
        classes = get_spec(self.datamodule.dataset).num_classes
        checks.check_fit(self.trainer, self.model, self.datamodule, classes)
        self._check_ckpt()
        if init := self._cfg(self.config).get("init_weights"):
            start_from_keras(self.model.model, init)
        say_batch(self.datamodule.batch_size, self.trainer)
        self._fit_t0 = time.perf_counter()

    before_validate = before_test = before_predict = _check_ckpt

    def after_validate(self) -> None:
        say_run_folder(self.trainer, self.run_dir)

    after_test = after_validate

    def after_fit(self) -> None:
        if self.trainer.interrupted:
            return
        cfg = self._cfg(self.config)
        test_and_record(self.trainer, self.model, self.datamodule, self.run_dir, cfg, self._fit_t0)


def main(argv: list[str] | None = None) -> int:
    """Console script ``lightning-mnist``: user mistakes become one line and exit code 2."""
    args = with_preset_paths(sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.argv[1:] = args  # LightningCLI reads the command line itself
    logging.basicConfig(format="%(message)s")
    logging.getLogger("lightning_mnist").setLevel(logging.INFO)  # show each fetch step

    def run() -> int:
        if args[:1] == ["export"]:
            from lightning_mnist.interop.export import main as export_main

            return export_main(args[1:])
        checks.check_config_files(args)
        SaveOnInterrupt.exit_code = None
        try:
            cli = cli_main(None if argv is None else args)
        except SystemExit:
            if SaveOnInterrupt.exit_code:  # Lightning's exit(1) after Ctrl-C or SIGTERM
                return SaveOnInterrupt.exit_code
            raise
        writer = next((c for c in cli.trainer.callbacks if hasattr(c, "failures")), None)
        return 1 if writer is not None and writer.failures else 0

    # Lightning's MisconfigurationException is a user's mistake too (a GPU asked for on a
    # machine without one, max_epochs below -1).
    user_errors = (MisconfigurationException,)
    return report_user_errors(run, user_errors, argument_hint(args, (*SUBCOMMANDS, "export")))


def cli_main(args: list[str] | None = None, run: bool = True) -> MNISTCLI:
    """Entry point of ``lightning-mnist``; tests call it with an argument list (default
    ``sys.argv[1:]``). ``run=False`` builds the model, data and trainer from ``args`` without a
    subcommand, and runs nothing."""
    quiet_upstream()
    with ExitStack() as locks:
        MNISTCLI.locks = locks
        return MNISTCLI(
            MNISTClassifier,
            MNISTDataModule,
            seed_everything_default=0,
            save_config_callback=RunConfig,
            # A parser error is raised, not printed after the usage screen: main() shows it.
            parser_kwargs={
                "exit_on_error": False,
                "allow_abbrev": False,  # --trainer.max_epoch is a typo, not max_epochs
                "epilog": EXPORT_HELP,
                **{s: {"exit_on_error": False} for s in SUBCOMMANDS},
            },
            args=args,
            run=run,
        )


if __name__ == "__main__":
    sys.exit(main())
