"""``mnist-compare`` as a command, without training: the run order, the options that reach
the children, the folder policy (refuse, resume), the checks before any run and the child
processes themselves."""

from __future__ import annotations

import json
import sys

from lightning_mnist.compare import cli as compare
from lightning_mnist.compare import runners
from lightning_mnist.compare.cli import main

from .fakes import fake_results, fake_runners, write_fake_runs


def test_runs_keras_then_lightning_per_seed(tmp_path, monkeypatch):
    calls = fake_runners(monkeypatch)
    out = tmp_path / "new" / "cmp"
    args = [
        "--seeds_list",
        "[3,1]",
        "--trainer.max_epochs",
        "7",
        "--early_stopping.patience",
        "4",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    got = [(c["framework"], c["seed"], c["epochs"], c["patience"]) for c in calls]
    assert got == [(fw, s, 7, 4) for s in (1, 3) for fw in ("keras", "lightning")]
    assert [c["where"] for c in calls] == [{"dataset": "mnist", "accelerator": "cpu"}] * 4
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seeds"] == [1, 3] and settings["target_accuracy"] == 0.98
    assert "loadavg_end" in settings
    assert len(json.loads((out / "report.json").read_text())["rows"]) == 4


def test_existing_out_is_refused_and_left_untouched(tmp_path, capsys):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["--out", str(out), "--trainer.max_epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists" in err and "cmp-2" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_resume_keeps_finished_runs_and_checks_settings(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.98), fake_results("lightning", 0, 0.981)])
    settings = {"seeds": [0], "epochs": 3, "patience": 2, "frameworks": ["keras", "lightning"]}
    settings |= {
        "dataset": "mnist",
        "preset": "tutorial",
        "lightning_args": "",
        "accelerator": "cpu",
    }
    (out / "settings.json").write_text(json.dumps({**settings, "command": "first"}))
    args = ["--resume", "true", "--out", str(out), "--seeds", "1", "--early_stopping.patience", "2"]
    # Every run is finished, so nothing trains (and no data dir is needed).
    assert (
        main([*args, "--trainer.max_epochs", "3", "--data.data_dir", str(tmp_path / "none")]) == 0
    )
    assert capsys.readouterr().out.count("already finished") == 2
    assert "Command: `first`" in (out / "report.md").read_text()  # the settings it started with
    assert main([*args, "--trainer.max_epochs", "5"]) == 2
    assert "was started with epochs=3" in capsys.readouterr().err


def test_damaged_settings_or_process_files_get_one_line(tmp_path, capsys):
    out = tmp_path / "cmp"
    write_fake_runs(out, [fake_results("keras", 0, 0.98)])
    for name, text in (("settings.json", "{not json"), ("settings.json", "[1, 2]")):
        (out / name).write_text(text)
        for extra in (["--resume", "true"], ["--report_only", "true"]):
            assert main(["--out", str(out), *extra]) == 2
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and "settings.json" in err and "Traceback" not in err
    (out / "settings.json").unlink()
    process = next(out.rglob("process.json"), None) or out / "runs" / "keras-seed0" / "process.json"
    process.write_text("\x00garbage")
    assert main(["--out", str(out), "--report_only", "true"]) == 2
    assert "process.json" in capsys.readouterr().err


def test_keras_runs_without_keras_installed_say_what_to_install(tmp_path, monkeypatch, capsys):
    real = compare.importlib.util.find_spec
    monkeypatch.setattr(
        compare.importlib.util, "find_spec", lambda name: None if name == "keras" else real(name)
    )
    assert main(["--out", str(tmp_path / "cmp"), "--seeds", "1", "--trainer.max_epochs", "1"]) == 2
    assert "lightning-mnist[keras]" in capsys.readouterr().err
    assert not (tmp_path / "cmp").exists()


def test_dataset_and_accelerator_reach_both_children(tmp_path, monkeypatch):
    cmds = []

    def fake_stream(cmd, prefix, log, quiet=False, accelerator="cpu"):
        cmds.append((cmd, accelerator))
        framework = "keras" if "keras_reference" in cmd else "lightning"
        write_fake_runs(log.parents[2], [fake_results(framework, 0, 0.9)])
        return []

    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr(runners, "check_gpu", lambda frameworks: None)
    monkeypatch.setattr(runners, "stream", fake_stream)
    out = tmp_path / "cmp"
    args = ["--seeds", "1", "--data.dataset", "fashion_mnist", "--trainer.accelerator", "gpu"]
    assert main([*args, "--out", str(out), "--lightning_args", "--model.conv_pool fused"]) == 0
    (keras, k_acc), (lightning, l_acc) = cmds
    assert k_acc == l_acc == "gpu"
    assert keras[keras.index("--data.dataset") + 1] == "fashion_mnist"
    assert lightning[lightning.index("--data.dataset") + 1] == "fashion_mnist"
    assert lightning[lightning.index("--trainer.accelerator") + 1] == "gpu"
    assert lightning[-2:] == ["--model.conv_pool", "fused"]  # passed through, last so it wins
    callback = next(a.split("=", 1)[1] for a in lightning if a.startswith("--trainer.callbacks+="))
    module, name = callback.rsplit(".", 1)
    assert hasattr(__import__(module, fromlist=[name]), name)  # the per-epoch line exists
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["dataset"], settings["target_accuracy"]) == ("fashion_mnist", 0.90)


def test_cpu_comparison_hides_the_gpus_from_the_children(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert runners.child_env("cpu")["CUDA_VISIBLE_DEVICES"] == ""
    assert runners.child_env("gpu")["CUDA_VISIBLE_DEVICES"] == "0"


def test_gpu_comparison_without_a_gpu_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runners, "check_data", lambda data_dir, dataset, create=False: None)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "cmp"
    args = ["--trainer.accelerator", "gpu", "--frameworks", "[lightning]", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "torch sees no GPU" in err
    assert not out.exists()


def test_stream_records_the_child_process(tmp_path):
    log = tmp_path / "run" / "run.log"
    lines = runners.stream([sys.executable, "-c", "print('hi')"], "", log, quiet=True)
    assert lines == ["hi"] and log.read_text().endswith("hi\n")
    process = json.loads((tmp_path / "run" / "process.json").read_text())
    assert process["launched_at"] > 1.6e9 and 0 < process["process_seconds"] < 60


def test_children_do_not_import_from_the_working_directory(tmp_path, monkeypatch):
    # A yaml.py in the cwd that leaves a marker when imported; presets.py imports yaml.
    (tmp_path / "yaml.py").write_text("open('imported', 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    lines = runners.stream([*runners.PYTHON, "-m", "lightning_mnist.presets"], "", tmp_path / "log")
    assert lines == [] and not (tmp_path / "imported").exists()
    # The check is real: a plain `python -m` puts the cwd first and imports it.
    runners.stream([sys.executable, "-m", "lightning_mnist.presets"], "", tmp_path / "log2")
    assert (tmp_path / "imported").exists()
