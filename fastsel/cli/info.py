"""``fastsel info``: what was built against what runs."""
from __future__ import annotations

import platform

import click
import torch

from .. import _backend, __version__
from ._common import emit_json

OPS = ("greedy", "threshold_decay", "nn")


def collect() -> dict:
    built = _backend.build_info()
    run = {
        "fastsel": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    kernels = {op: {dev: _backend.has_kernel(op, dev) for dev in ("cpu", "cuda")} for op in OPS}
    notes = []
    if not _backend.loaded():
        notes.append(f"extension not loaded ({_backend.why_unavailable()}): every op uses the PyTorch fallback")
    if built.get("torch") and built["torch"] != torch.__version__:
        notes.append(f"built against torch {built['torch']}, running torch {torch.__version__}: rebuild")
    if torch.cuda.is_available() and not any(k["cuda"] for k in kernels.values()):
        notes.append("a GPU is visible but no CUDA kernels are built: CUDA tensors use the PyTorch fallback")
    return {"built": built, "runtime": run, "extension_loaded": _backend.loaded(), "kernels": kernels,
            "notes": notes}


@click.command("info")
@click.option("--json", "as_json", is_flag=True)
def info(as_json):
    """Print what was built (CPU extension, CUDA kernels, archs) and what runs (torch, CUDA, devices)."""
    d = collect()
    if as_json:
        emit_json(d)
        return
    b, r = d["built"], d["runtime"]
    click.echo(f"fastsel {r['fastsel']}  python {r['python']}  torch {r['torch']}  threads {r['threads']}")
    click.echo(f"built:   C++ extension {'yes' if b.get('extension') else 'no'}"
               f", CUDA kernels {'yes' if b.get('cuda') else 'no'}"
               + (f" (archs {' '.join(b['cuda_archs']) or 'torch default'})" if b.get('cuda') else "")
               + (f", against torch {b['torch']}" if b.get("torch") else ""))
    click.echo(f"loaded:  {'yes' if d['extension_loaded'] else 'no: ' + str(_backend.why_unavailable())}")
    click.echo(f"runtime: CUDA {r['torch_cuda'] or 'none'}"
               f", GPU {', '.join(r['devices']) if r['devices'] else 'none visible'}")
    for op, k in d["kernels"].items():
        click.echo(f"  {op:16s} cpu: {'compiled' if k['cpu'] else 'fallback'}  "
                   f"cuda: {'compiled' if k['cuda'] else 'fallback'}")
    for n in d["notes"]:
        click.echo(f"note: {n}")
