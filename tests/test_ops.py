"""The opt-in fused Conv+MaxPool+ReLU operator: same maths as PyTorch's ops, registered so
that torch.compile and torch.export see it, and built and loaded only from a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from lightning_mnist.model import TutorialCNN
from lightning_mnist.network import build_network, conv_path
from lightning_mnist.ops import build, convpool
from lightning_mnist.ops.build import OpUnavailable


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    convpool.load()  # a build failure fails these tests: CI has a C++ compiler


def _pair() -> tuple[TutorialCNN, TutorialCNN]:
    torch.manual_seed(0)
    native = build_network(conv_pool="native").to(memory_format=torch.channels_last)
    fast = build_network(conv_pool="fused")
    fast.load_state_dict(native.state_dict())
    return native, fast


def test_fused_matches_pytorch_forward_and_gradients():
    native, fast = _pair()
    assert conv_path(fast) == "fused" and conv_path(native) == "native"
    assert conv_path(fast, "cuda") == "native"  # the operator is CPU-only
    x = torch.rand(37, 1, 28, 28)  # an odd batch: uneven per-thread ranges
    x[:5, :, :10] = 0  # blank regions give exact ties in the pooling windows
    y = torch.randint(0, 10, (37,))
    for m in (native, fast):
        m.eval()
        torch.nn.functional.cross_entropy(m(x), y).backward()
    # float32 sums in another order: a few ulps of the largest terms
    assert torch.allclose(native(x), fast(x), atol=1e-6)
    for p, q in zip(native.parameters(), fast.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-5)


def test_ties_go_to_the_first_window_position():
    conv = torch.nn.Conv2d(1, 2, 3)
    x = torch.zeros(1, 1, 28, 28)  # every window ties at the bias
    w = conv.weight.detach().requires_grad_()
    b = torch.tensor([0.5, -0.5], requires_grad=True)  # ReLU keeps channel 0, cuts channel 1
    out = convpool.conv_pool_relu(x, w, b)
    assert out.shape == (1, 13, 13, 2)
    out.sum().backward()
    # one position per window (not four), and nothing through ReLU's zeros
    assert torch.equal(b.grad, torch.tensor([169.0, 0.0]))
    # with a first-position tie only tap (0, 0) of each window's first position sees x = 1
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 0, 0] = 1.0
    w = torch.zeros(1, 1, 3, 3, requires_grad=True)
    convpool.conv_pool_relu(x, w, torch.ones(1, requires_grad=True)).sum().backward()
    assert w.grad[0, 0, 0, 0] == 1.0 and float(w.grad.sum()) == 1.0


def test_deterministic():
    _, fast = _pair()
    fast.eval()  # no dropout: both passes see the same function
    x = torch.rand(64, 1, 28, 28)
    grads = []
    for _ in range(2):
        fast.zero_grad()
        fast(x).sum().backward()
        grads.append([p.grad.clone() for p in fast.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*grads, strict=True))


def test_opcheck():
    torch.manual_seed(0)
    x = torch.rand(6, 1, 28, 28)
    w = torch.randn(4, 1, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    op = torch.ops.lightning_mnist.convpool_relu_fwd.default
    # schema, fake (meta) kernel, autograd registration and AOT dispatch, as PyTorch checks them
    torch.library.opcheck(op, (x, w, b))
    out, idx = op(x, w, b)
    g = torch.rand_like(out)
    torch.library.opcheck(torch.ops.lightning_mnist.convpool_relu_bwd.default, (g, x, idx))


def test_compiles_a_training_step_without_a_graph_break():
    _, fast = _pair()
    fast.eval()  # no dropout: eager and compiled runs see the same function
    # fullgraph=True raises on any graph break; aot_eager traces forward and backward through
    # the fake kernels and the registered autograd formula without compiling C++.
    compiled = torch.compile(fast, backend="aot_eager", fullgraph=True)
    x, y = torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))
    grads = []
    for model in (fast, compiled):
        fast.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        grads.append([p.grad.clone() for p in fast.parameters()])
    # The compiled backward reached every weight: all-zero gradients would pass the
    # allclose below wherever the eager ones are tiny.
    assert all(float(g.abs().sum()) > 0 for g in grads[1])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_exports_with_the_operator_in_the_graph():
    _, fast = _pair()
    batch = {"x": {0: torch.export.Dim("batch")}}  # the fake kernel handles a symbolic batch
    program = torch.export.export(fast.eval(), (torch.rand(2, 1, 28, 28),), dynamic_shapes=batch)
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "lightning_mnist.convpool_relu_fwd.default" in targets
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(program.module()(x), fast(x))


@pytest.fixture
def tiny_source(tmp_path: Path, monkeypatch) -> Path:
    """A one-line library instead of the operator: the build logic is the same, and fast."""
    source = tmp_path / "tiny.cpp"
    source.write_text('extern "C" int tiny() { return 1; }\n')
    monkeypatch.setattr(build, "SOURCE", source)
    return source


def test_changed_key_rebuilds(tmp_path, tiny_source, monkeypatch):
    cache = tmp_path / "cache"
    built = build.build(cache)
    assert built.parent == cache and built.exists()
    assert build.build(cache) == built  # same key: the same file, not rebuilt
    mtime = built.stat().st_mtime_ns
    monkeypatch.setattr(build, "cpu_features", lambda: "another cpu")
    other = build.build(cache)
    assert other != built and other.exists() and built.stat().st_mtime_ns == mtime
    monkeypatch.setattr(build.torch, "__version__", "9.9.9")
    third = build.build(cache)
    assert third not in (built, other)
    tiny_source.write_text('extern "C" int tiny() { return 2; }\n')
    assert build.build(cache) not in (built, other, third)


def test_library_writable_by_others_is_refused(tmp_path, tiny_source):
    cache = tmp_path / "cache"
    built = build.build(cache)
    os.chmod(built, 0o722)
    with pytest.raises(OpUnavailable, match="writable by other users"):
        build.build(cache)
    os.chmod(built, 0o700)
    os.chmod(cache, 0o777)
    with pytest.raises(OpUnavailable, match="writable by other users"):
        build.build(cache)


def test_library_of_another_user_is_refused(tmp_path, tiny_source, monkeypatch):
    cache = tmp_path / "cache"
    build.build(cache)
    uid = os.getuid()
    monkeypatch.setattr(build.os, "getuid", lambda: uid + 1)
    with pytest.raises(OpUnavailable, match="belongs to another user"):
        build.build(cache)


def test_unavailable_operator(monkeypatch, caplog):
    def fail() -> None:
        raise OpUnavailable("no C++ compiler (c++/g++) found")

    native, _ = _pair()
    monkeypatch.setattr(convpool, "load", fail)
    # auto: one warning, PyTorch's ops, the same outputs
    auto = build_network(conv_pool="auto").to(memory_format=torch.channels_last)
    auto.load_state_dict(native.state_dict())
    assert conv_path(auto) == "native" and "unavailable" in caplog.text
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(auto.eval()(x), native.eval()(x))
    # fused asked for explicitly: one line, before any training
    with pytest.raises(ValueError, match="conv_pool fused: no C\\+\\+ compiler"):
        build_network(conv_pool="fused")


def test_default_model_is_stock_pytorch():
    model = build_network()
    assert type(model) is TutorialCNN and conv_path(model) == "native"
    assert build.SOURCE.is_file() and build.SOURCE.suffix == ".cpp"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc")
def test_runs_in_torchs_own_thread_pool():
    # One OpenMP runtime in the process: the operator's parallel regions are torch's pool.
    # A torch built with OpenMP has loaded its runtime, so none found means the check is blind.
    x = torch.rand(64, 1, 28, 28)
    convpool.conv_pool_relu(x, torch.randn(8, 1, 3, 3), torch.zeros(8))
    maps = Path("/proc/self/maps").read_text().splitlines()
    names = ("gomp", "libomp", "iomp")
    runtimes = {line.split()[-1] for line in maps if any(n in line for n in names)}
    assert len(runtimes) == (1 if torch._C.has_openmp else 0), runtimes
