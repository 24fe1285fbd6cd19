"""fastsel.loop.rundir: resume of bad folders, tampered checkpoints, a second loop on one run dir
(moved here from the reliability files)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from _helpers import invoke as run, one_line


@pytest.fixture
def loop_run(tmp_path, rng):
    np.savez(tmp_path / "tiny.npz", images=(rng.random((20, 8, 8, 1)) * 255).astype(np.uint8),
             labels=rng.integers(0, 2, 20))
    return tmp_path


LOOP = ["-n", "8", "--train-steps", "2", "--batch-size", "4", "--sample-steps", "1", "--sample-batch", "8",
        "--iterations", "1", "--selector", "none"]


def test_loop_resume_of_bad_folders(loop_run):
    t = loop_run
    (t / "empty").mkdir()
    assert "config.json" in one_line(run("loop", "--resume", t / "empty"), 1)
    (t / "trunc").mkdir()
    (t / "trunc" / "config.json").write_text('{"dataset": "x", "n": ')
    assert "config.json" in one_line(run("loop", "--resume", t / "trunc"), 1)
    good = {"dataset": str(t / "tiny.npz"), "selectors": ["none"], "n": 8}
    (t / "unk").mkdir()
    (t / "unk" / "config.json").write_text(json.dumps(good | {"colour": "red"}))
    assert "colour" in one_line(run("loop", "--resume", t / "unk"), 1)
    (t / "sel").mkdir()
    (t / "sel" / "config.json").write_text(json.dumps(good | {"selectors": ["none", "best"]}))
    assert "best" in one_line(run("loop", "--resume", t / "sel"), 1)
    assert sorted(os.listdir(t / "sel")) == ["config.json"]  # nothing ran, nothing written


# ------------------------------------------------------------------ 7. checkpoints

def test_tampered_and_truncated_checkpoints(loop_run):
    from fastsel.io import DataError
    from fastsel.loop import train as MD
    from fastsel.loop.config import LoopConfig
    t = loop_run
    cfg = LoopConfig(dataset="x", unet="tiny", train_steps=4, batch_size=4, ckpt_every=2, n=8)
    ims = np.zeros((8, 8, 8, 1), np.uint8)
    lab = np.zeros(8, np.int64)
    w = t / "w"
    w.mkdir()
    MD.train(cfg, ims, lab, 1, str(w), seed=0)
    ck = w / "ckpt.pt"
    assert ck.exists() and (w / "ckpt.prev.pt").exists()

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(t / "pwned"),))
    torch.save({"x": Evil()}, ck)
    with pytest.raises(DataError) as e:
        MD.train(cfg, ims, lab, 1, str(w), seed=0)
    msg = str(e.value)
    assert str(ck) in msg and "weights_only=False" not in msg and "\n" not in msg
    assert not (t / "pwned").exists()
    # a truncated newest checkpoint: the previous one is used
    MD.save_model(torch.nn.Linear(1, 1), str(t / "m.pt"))
    data = (w / "ckpt.prev.pt").read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    model, _ = MD.train(cfg, ims, lab, 1, str(w), seed=0)
    assert model is not None


# ------------------------------------------------------------------ 9. one loop per run directory

def test_second_loop_on_a_run_dir_is_refused(loop_run):
    t = loop_run
    rd = t / "run"
    rd.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); "
        "f.seek(0); f.truncate(); f.write(str(__import__('os').getpid())); f.flush(); print('ok', flush=True); "
        "time.sleep(60)"), str(rd / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        err = one_line(run("loop", t / "tiny.npz", *LOOP, "--run-dir", rd), 1)
        assert str(holder.pid) in err
    finally:
        holder.kill()
        holder.wait()
