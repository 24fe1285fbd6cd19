"""No silent wrong answers, no lost files, one-line errors: the hostile / careless user's cases."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import fastsel
from fastsel import metrics as M
from fastsel.cli.main import cli

from _helpers import free_port
from _helpers import one_line, select_under_file_size_limit


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])






# ------------------------------------------------------------------ 1. data loss

def test_output_that_is_an_input_is_refused(feats, tmp_path):
    before = feats.read_bytes()
    one_line(run("select", "--in", feats, "-n", 5, "--out", feats), 2)
    os.symlink(feats, tmp_path / "link.npy")
    one_line(run("select", "--in", feats, "-n", 5, "--out", tmp_path / "link.npy"), 2)
    os.chdir(tmp_path)
    one_line(run("select", "--in", "feats.npy", "-n", 5, "--out", "./sub/../feats.npy"), 2)
    imgs = tmp_path / "imgs.npy"
    np.save(imgs, np.zeros((4, 8, 8, 1), np.uint8))
    b2 = imgs.read_bytes()
    one_line(run("embed", imgs, "--features", "pixels", "--out", imgs), 2)
    one_line(run("fid", imgs, imgs, "--save-stats", imgs, tmp_path / "b.npz"), 2)
    assert feats.read_bytes() == before and imgs.read_bytes() == b2


# ------------------------------------------------------------------ 2. extreme magnitudes

@pytest.mark.parametrize("exp, dtype", [(70, torch.float32), (-80, torch.float32), (-140, torch.float32),
                                        (90, torch.bfloat16), (-90, torch.bfloat16)], ids=str)
def test_extreme_magnitudes_select_as_the_unscaled_pool(exp, dtype, backend, rng):
    base = torch.from_numpy(rng.standard_normal((300, 6))).to(dtype)
    x = base * 2.0 ** exp  # exact (a power of two), unless it leaves the dtype's range
    assert torch.equal(x / 2.0 ** exp, base) or exp == -140
    if exp == -140:  # subnormal float32 data: compare with the same stored values scaled back up
        base = (x.double() * 2.0 ** 140).to(dtype)
    g, g0 = fastsel.greedy(x, 50, 3, backend=backend), fastsel.greedy(base, 50, 3, backend=backend)
    assert torch.equal(g.indices, g0.indices)
    assert torch.allclose(g.distances[1:].double() / 2.0 ** exp, g0.distances[1:].double(), rtol=1e-6)
    t = fastsel.threshold_decay(x, 50, 3, backend=backend)
    t0 = fastsel.threshold_decay(base, 50, 3, backend=backend)
    assert torch.equal(t.indices, t0.indices) and t.tau0 == pytest.approx(t0.tau0 * 2.0 ** exp, rel=1e-12)
    k, k0 = fastsel.nn(x, k=2, exclude_self=True, backend=backend), fastsel.nn(base, k=2, exclude_self=True,
                                                                             backend=backend)
    assert torch.equal(k.indices, k0.indices)
    e, e0 = M.kl_entropy(x, backend=backend), M.kl_entropy(base, backend=backend)
    assert e == pytest.approx(e0 + 6 * exp * np.log(2), rel=1e-6, abs=1e-6)
    assert M.mnnd(x, backend=backend) / 2.0 ** exp == pytest.approx(M.mnnd(base, backend=backend), rel=1e-6)


def test_extreme_magnitudes_through_the_cli(tmp_path, rng):
    base = rng.standard_normal((150, 5)).astype(np.float32)
    np.save(tmp_path / "a.npy", base)
    np.save(tmp_path / "b.npy", base * np.float32(2.0 ** 64))
    for m in ("greedy", "threshold"):
        ra = run("select", "--in", tmp_path / "a.npy", "-n", 30, "--method", m, "--out", tmp_path / "ia.npy")
        rb = run("select", "--in", tmp_path / "b.npy", "-n", 30, "--method", m, "--out", tmp_path / "ib.npy")
        assert ra.exit_code == 0 and rb.exit_code == 0, rb.output
        assert np.load(tmp_path / "ia.npy").tolist() == np.load(tmp_path / "ib.npy").tolist()


# ------------------------------------------------------------------ 3. ranks that see different pools

def _rank_worker(rank, world, port, paths, outdir, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    r = CliRunner().invoke(cli, ["select", "--in", paths[rank], "-n", "10", "--out", os.path.join(outdir, "o.npy")])
    q.put((rank, r.exit_code, r.stderr))


def test_torchrun_ranks_with_different_pools_fail_together(tmp_path, rng):
    import torch.multiprocessing as mp
    x = rng.standard_normal((100, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[:90])  # another node's copy with fewer rows
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    paths = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    procs = [ctx.Process(target=_rank_worker, args=(r, 2, port, paths, str(tmp_path), q)) for r in range(2)]
    for p in procs:
        p.start()
    res = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    for rank, code, err in res:
        assert code == 1, (rank, err)
        assert "ranks disagree on the pool" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "o.npy").exists()


# ------------------------------------------------------------------ 4. integers beyond 2^53

def test_integers_beyond_2_53_are_refused(tmp_path):
    x = np.array([[2**53 + 1, 0], [0, 1], [3, 4]], dtype=np.int64)
    with pytest.raises(ValueError, match="2\\^53"):
        fastsel.greedy(x, 2)
    np.save(tmp_path / "i.npy", x)
    assert "2^53" in one_line(run("select", "--in", tmp_path / "i.npy", "-n", 2), 1)
    np.save(tmp_path / "u.npy", np.array([[2**63, 1], [1, 2]], dtype=np.uint64))
    one_line(run("select", "--in", tmp_path / "u.npy", "-n", 2), 1)
    ok = np.array([[2**53, 0], [0, 1], [-2**53, 4]], dtype=np.int64)  # exactly representable: accepted
    assert fastsel.greedy(ok, 3, 0).indices.tolist() == [0, 2, 1]


# ------------------------------------------------------------------ 5. FID of non-finite statistics

def test_fid_refuses_nonfinite_statistics(tmp_path):
    d = 3
    np.savez(tmp_path / "a.npz", mu=np.zeros(d), sigma=np.eye(d), n=10)
    np.savez(tmp_path / "b.npz", mu=np.array([np.nan, 0, 0]), sigma=np.eye(d), n=10)
    assert "NaN" in one_line(run("fid", tmp_path / "a.npz", tmp_path / "b.npz"), 1)
    np.savez(tmp_path / "c.npz", mu=np.zeros(d), sigma=np.eye(d), n=np.array([1, 2]))
    assert "n" in one_line(run("fid", tmp_path / "a.npz", tmp_path / "c.npz"), 1)


# ------------------------------------------------------------------ 6. one line where a traceback was

def test_unwritable_outputs_are_one_line_and_keep_the_old_file(feats, tmp_path):
    one_line(run("select", "--in", feats, "-n", 5, "--out", tmp_path / "no" / "such" / "dir" / "o.npy"), 1)
    one_line(run("select", "--in", feats, "-n", 5, "--out", str(tmp_path) + "/"), 2)
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o555)
    if os.access(ro, os.W_OK):  # root ignores permissions: use a read-only bind mount if we can, else skip that part
        pass
    else:
        one_line(run("select", "--in", feats, "-n", 5, "--out", ro / "o.npy"), 1)
    os.chmod(ro, 0o755)


def test_file_size_limit_mid_write_keeps_the_earlier_output(tmp_path, rng):
    big = tmp_path / "big.npy"
    np.save(big, rng.standard_normal((20000, 8)).astype(np.float32))
    out = tmp_path / "o.npy"
    out.write_bytes(b"earlier output")
    p = select_under_file_size_limit(big, out)
    assert p.returncode == 1 and "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert out.read_bytes() == b"earlier output"
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []


@pytest.mark.parametrize("case", ["float128", "big-endian", "npy-named-npz", "npz-named-npy"])
def test_odd_npy_files(case, tmp_path, rng):
    x = rng.standard_normal((50, 4))
    p = tmp_path / "f.npy"
    if case == "float128":
        if not hasattr(np, "float128"):
            pytest.skip("no float128 on this platform")
        np.save(p, x.astype(np.float128))
        assert "float128" in one_line(run("select", "--in", p, "-n", 5), 1)
        return
    if case == "big-endian":
        np.save(p, x.astype(">f4"))
        r = run("select", "--in", p, "-n", 5, "--out", tmp_path / "o.npy", "--start", 0)
        assert r.exit_code == 0, r.output
        assert np.load(tmp_path / "o.npy").tolist() == fastsel.greedy(x.astype(np.float32), 5, 0).indices.tolist()
        return
    if case == "npy-named-npz":
        p = tmp_path / "f.npz"
        with open(p, "wb") as f:
            np.save(f, x)
    else:
        np.savez(tmp_path / "g.npz", a=x)
        os.rename(tmp_path / "g.npz", p)
    r = run("select", "--in", p, "-n", 5, "--out", tmp_path / "o.npy", "--start", 0)
    assert r.exit_code == 0, r.output  # read by its contents, not its name
    assert np.load(tmp_path / "o.npy").tolist() == fastsel.greedy(x, 5, 0).indices.tolist()


def test_key_on_npy_is_refused(feats):
    assert "--key" in one_line(run("select", "--in", feats, "-n", 5, "--key", "x"), 2)


def test_embed_labels_shorter_than_images(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((6, 8, 8, 1), np.uint8), labels=np.zeros(4, np.int64))
    assert "labels" in one_line(run("embed", tmp_path / "d.npz", "--features", "pixels", "--out",
                                    tmp_path / "o.npy"), 1)


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


# ------------------------------------------------------------------ 8. real bugs keep their traceback

def test_unexpected_errors_print_a_traceback_and_the_version(feats, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("an internal bug")
    monkeypatch.setattr(fastsel.selectors, "greedy", boom)
    r = run("select", "--in", feats, "-n", 5)
    assert r.exit_code == 1
    assert "Traceback" in r.stderr and "an internal bug" in r.stderr and "fastsel 0." in r.stderr
    assert "report" in r.stderr


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


# ------------------------------------------------------------------ 10. the umask applies

def test_outputs_follow_the_umask(feats, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "o.npy"
        assert run("select", "--in", feats, "-n", 5, "--out", out).exit_code == 0
        assert (os.stat(out).st_mode & 0o777) == 0o644
        os.umask(0o077)
        out2 = tmp_path / "o2.npy"
        assert run("select", "--in", feats, "-n", 5, "--out", out2).exit_code == 0
        assert (os.stat(out2).st_mode & 0o777) == 0o600
    finally:
        os.umask(old)


# ------------------------------------------------------------------ 12. cosmetic

def test_duplicates_warning_is_one_clean_line(tmp_path):
    x = np.zeros((20, 3), np.float32)
    x[10:] = 1.0
    np.save(tmp_path / "dup.npy", x)
    p = subprocess.run([sys.executable, "-m", "fastsel", "select", "--in", str(tmp_path / "dup.npy"), "-n", "4",
                        "--out", str(tmp_path / "o.npy")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "UserWarning" not in p.stderr and ".py:" not in p.stderr
    assert p.stderr.count("warning: ") == 2 and p.stderr.strip().count("\n") == 1  # selection and pool


def test_selection_of_one_row_prints_no_none(feats, tmp_path):
    r = run("select", "--in", feats, "-n", 1, "--out", tmp_path / "o.npy")
    assert r.exit_code == 0 and "None" not in r.stdout


# ------------------------------------------------------------------ 11. a busy machine

def test_core_governor_follows_the_free_cores(monkeypatch):
    from fastsel import _threads as T
    monkeypatch.setattr(T.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", lambda k: calls.append(k))
    readings = iter([(0, 0, 0),        # start
                     (200, 0, 100),    # both CPUs busy, half of it ours: another process holds a core
                     (400, 200, 200),  # one CPU idle, the other ours: free again
                     ])
    monkeypatch.setattr(T, "_read", lambda: next(readings))
    monkeypatch.setattr(T, "_cpus", lambda: 2)
    g = T.CoreGovernor(every=3, first=1, enabled=True)
    g.step()                                  # first look: a competitor -> 1 thread
    assert calls == [1]
    g.step(), g.step()                        # third step: free again -> 2 threads
    assert calls == [1, 2]
    assert g.others((0, 0, 0), (200, 100, 100)) == 0.0  # only this process was busy


@pytest.mark.parametrize("user", [None, "ACTIVE"])
def test_the_wait_policy_does_not_reach_child_processes(user):
    """fastsel sets OMP_WAIT_POLICY only for the runtime it loads with ``_C``, then takes it back out:
    a child process (a --jobs worker, a benchmark's run) started torch's runtime passive when it leaked,
    and 2-thread training ran 2x slower. A policy the user set stays."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "FASTSEL_OMP_WAIT_POLICY")}
    if user:
        env["OMP_WAIT_POLICY"] = user
    code = ("import os, subprocess, sys, fastsel; print(os.environ.get('OMP_WAIT_POLICY')); "
            "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"OMP_WAIT_POLICY\"))'], "
            "capture_output=True, text=True).stdout.strip())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(user)] * 2
