"""Every option of every command refuses a bad value before any work (issue #44, class c).

The command tree is walked (click groups' ``commands``), so an option added tomorrow is covered the
day it is added: each option whose type is a number (click.INT, FLOAT, IntRange, FloatRange), a
choice, a comma list (``fastsel.cli._common.CommaList``) or a device is given bad values -- a
non-number, a negative number, 0, a number past int64, nan and inf, an unknown choice, ``tpu`` --
with the command's other required arguments filled with harmless files. Each must end in one
"Error: ..." line with a non-zero exit status, no traceback, and before the command's first
expensive step (WORK: each is replaced by a function that raises WorkStarted). A value that is
really valid (a seed of 0) is in ALLOWED with the reason.

A new command needs a _fill entry when it has required arguments, and its first expensive step in
WORK: test_every_command_reaches_its_work_with_the_fill fails until both are right.
"""
import importlib
import os
import re
import shutil

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fastsel.cli._common import CommaList, DeviceType
from fastsel.cli.main import cli
from fastsel.selectors import all_options

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HUGE = str(2 ** 63)  # one past int64: no count, size or index a tensor can hold


class WorkStarted(BaseException):
    """Raised in place of a command's first expensive step: the value was not refused before it (a
    BaseException, like KeyboardInterrupt, so that no command's error handling turns it into a line)."""


# The first expensive step of each command (a model loaded, a pool built, a selection, a training,
# a benchmark): reaching one of these is work started. Reading the small input files before it is not
# (a bound that depends on the data -- n against the rows -- is checked after reading them).
WORK = [
    ("fastsel.cli.bench", "_run"), ("fastsel.cli.bench", "_select"), ("fastsel.cli.bench", "_gpu"),
    ("fastsel.benchmarks.check", "run"),
    ("fastsel.cli.select", "run_select"), ("fastsel.cli.select", "_select_sharded"),
    ("fastsel.features", "get"), ("fastsel.fid", "load_stats"),
    ("fastsel.metrics", "summary"), ("fastsel.metrics", "kl_entropy_fixed"),
    ("fastsel.curate.run", "embed_source"),  # looked up there (one process: the walk runs no torchrun)
    ("fastsel.cli.demo", "make_pool"),
    ("fastsel.loop.train", "train"), ("fastsel.loop.sample", "sample"), ("fastsel.loop.train", "describe"),
    ("fastsel.cli.loop", "_sweep"), ("fastsel.cli.loop", "_resume_sweep"),
    ("fastsel.loop.report", "_draw"),
    ("fastsel.cli.info", "collect"),
]

# Values that are valid for an option ("*": any command), with the reason.
_RUNS_LONGER = "a count of repeats or steps: a huge one only runs longer (nothing is held per step)"
_CLAMPED = "clamped: a batch larger than the set is the whole set"
ALLOWED = {
    ("*", "--seed", "0"): "0 is a seed like any other",
    ("*", "--start", "0"): "row 0 is a valid first pick",
    ("loop", "--eval-samples", "0"): "0: no extra samples beyond n are measured",
    ("loop", "--holdout", "0"): "0: no held-out rows, gs_norm is skipped",
    ("loop", "--warmup-steps", "0"): "0: no learning-rate warm-up",
    ("loop", "--cfg-scale", "0"): "0: no classifier-free guidance",
    ("report", "--iteration", "0"): "iteration 0 is the first one",
    **{(c, o, HUGE): _RUNS_LONGER for c, o in [
        ("bench contention", "--repeats"), ("bench compat", "--repeats"), ("bench loop", "--steps"), ("bench loop", "--repeats"),
        ("bench loop", "--sweep"), ("bench prune", "--reps"), ("loop", "--iterations"), ("loop", "--epochs"),
        ("loop", "--train-steps"), ("loop", "--warmup-steps"), ("loop", "--ckpt-every")]},
    **{(c, "--batch-size", HUGE): _CLAMPED for c in ("bench embed", "embed", "fid", "curate", "loop")},
    ("loop", "--sample-batch", HUGE): _CLAMPED,
    ("curate", "--shard-rows", HUGE): "clamped: one shard of every row",
    ("bench curate", "--shard-rows", HUGE): "clamped: one shard of every row (as curate's)",
    ("loop", "--holdout", HUGE): "clamped to the rows the training set leaves (fastsel/loop/run.py load_real)",
    ("loop", "--jobs", HUGE): "at most one process per sub-run is started (spawned on demand)",
    **{(c, "--knn", HUGE): "clamped to the pool: every row is a neighbour (fastsel/diversity.py knn_graph)"
       for c in ("select", "curate", "loop")},
    ("loop", "--entropy-m", HUGE): "a subset larger than the measured set: entropy_fixed is recorded as None, "
                                   "by the loop's design (fastsel/loop/run.py)",
}

# Options that apply with another option only (else the command refuses them for that): given with it.
# A selector's option applies with a --method that declares it (fastsel.selectors.Option).
CONTEXT = {(c, o.flag): ["--method", takers[0]] for c in ("select", "curate")
           for o, takers in all_options().values()}

# Plain-string options that hold numbers or lists and are checked in the command's body (before any
# work) rather than by a click type, with bad values for each.
BODY_CHECKED = {
    ("loop", "--n"): ["0", "abc", "500,500", ""],
    ("loop", "--alpha"): ["0", "1", "nan", "abc"],
    ("loop", "--seeds"): ["-1", HUGE, "abc", "1,1"],
    ("loop", "--selector"): ["bogus", ""],
}

# Refusals still missing in files this change leaves to their owners (strict xfail: remove the entry once
# the refusal is there).
PENDING = {
    ("loop", "--pool-factor", HUGE): "fastsel/loop: pool_factor x n samples are generated and held; no bound",
    ("loop", "--eval-samples", HUGE): "fastsel/loop: eval_samples samples are generated and held; no bound",
}


def _walk(cmd, path=()):
    if path:
        yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, path + (name,))


COMMANDS = dict(_walk(cli))


def _opt(p) -> str:
    return next((o for o in p.opts if o.startswith("--")), p.opts[0])


def _bad_values(t, p=None) -> list:
    if isinstance(t, DeviceType) or (p is not None and p.name == "device"):
        return ["tpu", "cuda:99", ""]
    if isinstance(t, CommaList):
        return ["", "1,,2"] + _bad_values(t.item)
    if isinstance(t, click.Choice):
        return ["bogus"]
    if isinstance(t, click.types.IntParamType):  # click.INT and IntRange
        return ["abc", "1.5", "-1", "0", HUGE]
    if isinstance(t, click.types.FloatParamType):  # click.FLOAT and FloatRange
        return ["abc", "-1", "0", "nan", "inf"]
    return []


def _cases():
    for path, cmd in COMMANDS.items():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or p.nargs != 1:
                continue
            values = _bad_values(p.type, p) + BODY_CHECKED.get((path[0], _opt(p)), [])
            for v in values:
                key = (" ".join(path), _opt(p), v)
                if (key[0], key[1], v) in ALLOWED or ("*", key[1], v) in ALLOWED:
                    continue
                marks = [pytest.mark.xfail(strict=True, reason=PENDING[key])] if key in PENDING else []
                yield pytest.param(path, _opt(p), v, id=f"{key[0]} {key[1]}={v}", marks=marks)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("walk")
    np.save(d / "feats.npy", np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32))
    np.save(d / "images.npy", np.random.default_rng(0).integers(0, 256, (64, 16, 16, 1)).astype(np.uint8))
    shutil.copytree(os.path.join(ROOT, "docs", "selectors", "records", "selectors", "seed0"), d / "run")
    return d


def _fill(path, d) -> list:
    """Harmless values of each command's required arguments (a small feature or image file)."""
    feats, images = str(d / "feats.npy"), str(d / "images.npy")
    return {
        ("select",): ["--in", feats, "-n", "5", "--out", str(d / "sel.npy")],
        ("metrics",): ["--in", feats],
        ("embed",): [images, "--features", "pixels", "--out", str(d / "emb.npy")],
        ("fid",): [images, images],
        ("curate",): [images, "-n", "2", "--features", "pixels", "--out", str(d / "cur")],
        ("demo",): ["--out", str(d / "demo.npy")],
        ("loop",): [images, "--run-dir", str(d / "loop")],
        ("report",): [str(d / "run"), "--out", str(d / "report")],
        ("bench", "frontier"): ['{"ch": [8], "size": 16, "n_real": 16}'],
    }.get(path, [])


@pytest.fixture
def no_work(monkeypatch):
    def stop(*a, **k):
        raise WorkStarted
    for mod, attr in WORK:
        monkeypatch.setattr(importlib.import_module(mod), attr, stop)


def _invoke(path, args):
    """The command's result, or None when it reached its work."""
    try:
        return CliRunner().invoke(cli, [*path, *args])
    except WorkStarted:
        return None


def _testable(cmd) -> bool:
    return any(isinstance(p, click.Option) and not p.is_flag and p.nargs == 1 and _bad_values(p.type, p)
               for p in cmd.params)


@pytest.mark.parametrize("path", [p for p, c in COMMANDS.items() if _testable(c)], ids=" ".join)
def test_every_command_reaches_its_work_with_the_fill(path, files, no_work):
    """The fill is valid: without a bad value the command gets as far as its work (so a refusal below
    is the bad value's, not the fill's), and its work is in WORK (else it would really run here)."""
    for extra in [[]] + [c for (p, _), c in CONTEXT.items() if p == " ".join(path)]:
        r = _invoke(path, [*_fill(path, files), *extra])
        assert r is None, (f"fastsel {' '.join(path)} {_fill(path, files) + extra} did not reach a WORK function: "
                           f"{r.output[-2000:]}")


@pytest.mark.parametrize("path, opt, value", list(_cases()))
def test_a_bad_value_is_one_line_before_any_work(path, opt, value, files, no_work):
    given = [f"{opt}={value}"] if opt.startswith("--") else [opt, value]
    r = _invoke(path, [*_fill(path, files), *CONTEXT.get((" ".join(path), opt), []), *given])
    line = f"fastsel {' '.join(path)} {opt} {value!r}"
    assert r is not None, f"{line}: accepted, the work started"
    assert "Traceback" not in r.output and (r.exception is None or isinstance(r.exception, SystemExit)), \
        f"{line}: {r.exception!r}\n{r.output[-3000:]}"
    assert r.exit_code != 0, f"{line}: exit 0\n{r.output[-2000:]}"
    assert r.output.strip().splitlines()[-1].startswith("Error: "), f"{line}: {r.output[-2000:]}"


def test_no_plain_string_option_holds_numbers_or_a_list():
    """A number or a comma list in a plain string option is checked by no click type: give it one
    (click.IntRange, CommaList ...) or check it in the command's body and list it in BODY_CHECKED."""
    looks = re.compile(r"[-+.\w]+(,[-+.\w]+)+|[-+]?\d+(\.\d*)?(e[-+]?\d+)?")
    bad = []
    for path, cmd in COMMANDS.items():
        for p in cmd.params:
            if not isinstance(p, click.Option) or p.is_flag or not isinstance(p.type, click.types.StringParamType):
                continue
            default = p.default if isinstance(p.default, str) else ""
            listed = looks.fullmatch(default) or "comma list" in (p.help or "").lower()
            if listed and (path[0], _opt(p)) not in BODY_CHECKED:
                bad.append(f"fastsel {' '.join(path)} {_opt(p)}")
    assert not bad, bad


def test_known_refusals_of_the_issue(no_work):
    """The issue's list, by name (the walk above covers them too)."""
    for args, match in [
        (["bench", "prune", "--reps", "0"], "--reps"), (["bench", "prune", "--N", "0"], "--N"),
        (["bench", "prune", "--d", "-1"], "--d"),
        (["bench", "prune", "--N", "10", "--n", "20"], "larger than the pool"),
        (["bench", "scaling", "--sizes", "0,abc"], "--sizes"), (["bench", "scaling", "--pools", "bogus"], "--pools"),
        (["bench", "selectors", "--sizes", "-5"], "--sizes"), (["bench", "embed", "--images", "0"], "--images"),
        (["bench", "embed", "--device", "tpu"], "--device must be cpu or cuda"),
        (["bench", "embed", "--batch-size", "0"], "--batch-size"), (["bench", "loop", "--size", "0"], "--size"),
        (["bench", "loop", "--repeats", "0"], "--repeats"), (["bench", "contention", "--repeats", "-1"], "--repeats"),
        (["fid", "a", "b", "--device", "tpu"], "--device must be cpu or cuda"),
        (["bench", "prune", "--N", HUGE], "this machine has"),
    ]:
        r = _invoke(args, [])
        assert r.exit_code == 2 and match in r.output and "Traceback" not in r.output, (args, r.output)


@pytest.mark.parametrize("channels", [2, 4])
@pytest.mark.parametrize("cmd", ["fid", "embed"])
def test_gray_alpha_and_rgba_arrays_drop_their_alpha(tmp_path, monkeypatch, cmd, channels):
    """A 2-channel (gray + alpha) or 4-channel (RGBA) uint8 array is read as an image folder's PNG
    would be: the alpha channel dropped (gray and RGB), said in one note line; 5 channels: one line."""
    seen = []
    import fastsel.features as Fe
    real_embed = Fe.embed

    def spy(images, ext, *a, **k):
        seen.append(images.shape)
        return real_embed(images, ext, *a, **k)
    monkeypatch.setattr(Fe, "embed", spy)
    if cmd == "fid":  # the inception weights are not needed to see what fid hands to its extractor
        monkeypatch.setattr(Fe, "get", lambda name, device=None: Fe.EXTRACTORS["pixels"]("pixels", torch.device("cpu")))
    im = np.random.default_rng(0).integers(0, 256, (6, 8, 8, channels)).astype(np.uint8)
    np.save(tmp_path / "im.npy", im)
    args = ([str(tmp_path / "im.npy")] * 2 if cmd == "fid" else
            [str(tmp_path / "im.npy"), "--features", "lenet", "--out", str(tmp_path / "e.npy")])
    r = CliRunner().invoke(cli, [cmd, *args])
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    assert "alpha channel dropped" in r.output
    assert seen and all(s[1:] == (8, 8, channels - 1) for s in seen)
    np.save(tmp_path / "im5.npy", np.zeros((6, 8, 8, 5), np.uint8))
    r = CliRunner().invoke(cli, [cmd, str(tmp_path / "im5.npy"), *args[1:]])
    assert r.exit_code == 1 and "5 channels" in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_nn_k_out_of_range_is_a_fastsel_error(backend):
    import fastsel
    from fastsel.errors import FastselError
    x = torch.randn(5, 2)
    for k, kw in ((0, {}), (6, {}), (5, {"exclude_self": True})):
        with pytest.raises(FastselError, match="k must be in"):
            fastsel.nn(x, k=k, backend=backend, **kw)
    with pytest.raises(FastselError, match="same length"):
        fastsel.nn(x, torch.randn(4, 2), k=1, exclude_self=True, backend=backend)
