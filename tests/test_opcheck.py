"""torch.library.opcheck on every compiled op: schema, fake kernels, dispatcher registration."""
import pytest
import torch

pytest.importorskip("fastsel._C", reason="installed without the extension")
import fastsel  # noqa: E402  (registers the fake kernels)
from fastsel import reference  # noqa: E402
from _helpers import kernel_device  # noqa: E402

CASES = {
    "greedy": lambda x: (x, 5, 1),
    "greedy_resume": lambda x: (x, 3, -1, reference.greedy(x, 2, 0)[2]),
    "threshold_decay": lambda x: (x, 4, 0, 1.5, 0.5, False),
    "nn": lambda x: (x, x[:7], 2, False),
    "nn_self": lambda x: (x, x, 3, True),
    "update_min_d2": lambda x: (x, reference.greedy(x, 2, 0)[2], x[5:8].clone(), 0.5, 3),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_opcheck(device, case, dtype):
    """Every op with kernels on the device (cpu; cuda when built): schema, fake kernel, dispatch."""
    dev = kernel_device(device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=g).to(dtype).to(dev)
    op = getattr(torch.ops.fastsel, {"greedy_resume": "greedy", "nn_self": "nn"}.get(case, case))
    torch.library.opcheck(op, CASES[case](x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_opcheck_greedy_sets(dtype):
    x = torch.randn(20, 6, generator=torch.Generator().manual_seed(0)).to(dtype)
    t = lambda *v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
    torch.library.opcheck(torch.ops.fastsel.greedy_sets, (x, t(0, 8, 8, 20), t(3, 0, 5), t(1, 0, 11), 8))


def test_opcheck_stream_read():
    torch.library.opcheck(torch.ops.fastsel._stream_read, (torch.randn(1000),))


def test_opcheck_facility_kernels():
    K = torch.rand(300, 300)
    rows, c = torch.tensor([0, 5, 299]), torch.rand(300) * 0.5
    torch.library.opcheck(torch.ops.fastsel._facility_gains, (K, rows, c, c * 0.9))
    torch.library.opcheck(torch.ops.fastsel._facility_gains, (K.double(), rows, c.double()))
    torch.library.opcheck(torch.ops.fastsel._facility_mirror, (torch.rand(300, 300), 10, 200))


def test_stream_read_value():
    x = torch.arange(100000, dtype=torch.float32) % 7
    assert torch.ops.fastsel._stream_read(x).item() == pytest.approx(float(x.double().sum()), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-5, 6, (500, 8), generator=g).float()
    a = fastsel.greedy(x, 100, 0).indices
    b = fastsel.greedy(x.cuda(), 100, 0).indices.cpu()
    assert torch.equal(a, b)
