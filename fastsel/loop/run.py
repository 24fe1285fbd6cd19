"""The self-consuming loop: train, sample, measure, select the next training set, repeat.

The run directory's layout: fastsel/loop/rundir.py.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time

import glob
import shutil

import numpy as np
import torch
import torch.nn.functional as TF
from tqdm import tqdm

from .. import _dist, data, features
from .. import fid as F
from .. import metrics as M
from ..features import lenet
from ..io import DataError, folder_lock, save_json, save_npy, save_text
from . import sample as SM
from . import train as TR
from .columns import shown
from .config import FREE_SETTINGS, LoopConfig, config_hash, load_config, needs_padding, result_settings
from .logger import Logger
from .pool import candidate_pool, select_from, source_shares
from .report import write_report
from .rundir import (check_record, check_run_folder, damaged, gather_rows, iter_path, load_array, read_json,
                     stale_temp_files)


def _rank() -> tuple:
    return _dist.rank_world()


def _barrier():
    _dist.barrier()


def _pixels(a, dev) -> torch.Tensor:
    """Images (uint8, any layout) as flat rows in [0, 1] on ``dev``: the copy tests' space."""
    return torch.from_numpy(np.asarray(a, np.float32).reshape(len(a), -1) / 255.0).to(dev)


def _finite(v):
    return float(v) if v is not None and math.isfinite(float(v)) else None


def resize_images(im: np.ndarray, size: int) -> np.ndarray:
    """uint8 NHWC images resized to size x size (area averaging when shrinking, bilinear otherwise)."""
    if im.shape[1] == size and im.shape[2] == size:
        return im
    x = torch.from_numpy(np.ascontiguousarray(im)).permute(0, 3, 1, 2).float()
    mode = "area" if size < im.shape[1] else "bilinear"
    x = TF.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def load_real(cfg: LoopConfig, download: bool = False):
    """The real training images (uint8 NHWC), their labels, and the held-out real images (cfg.holdout
    rows of the same split, never in the training set; for gs_norm): resized to cfg.image_size when
    set; else 28x28 (MNIST) padded to 32x32 when the UNet's levels need it. The training rows are the
    first data_n (default n) of one permutation per seed, so a smaller n's set lies inside a larger
    one's; the held-out rows are its last rows, the same for every n."""
    ds = data.load(cfg.dataset, download=download)
    want = cfg.data_n or cfg.n
    if not 1 <= want <= len(ds.images):
        raise DataError(f"n must be in [1, {len(ds.images)}] for {cfg.dataset}, got {want}")
    keep, held = data.nested_rows(len(ds.images), want, cfg.seed, min(cfg.holdout, len(ds.images) - want))
    def prep(im):
        if cfg.image_size:
            im = resize_images(im, cfg.image_size)
        elif im.shape[1] == im.shape[2] and needs_padding(im.shape[1], cfg.unet, ds.images.shape[-1]):
            im = np.pad(im, ((0, 0), (2, 2), (2, 2), (0, 0)))
        return np.ascontiguousarray(im)
    labels = ds.labels[keep].astype(np.int64)
    return prep(ds.images[keep]), labels, prep(ds.images[held])


def featurize(name: str, images: np.ndarray, device: str) -> np.ndarray:
    ex = features.get(name, device=device)
    return np.asarray(features.embed(images, ex, quiet=True), np.float32)


def pool_sources(cand, rows, device: str = "cpu") -> list:
    """Per source of a candidate pool (0 real, j generation j): its rows, its spread (mean 1-NN distance
    within the source), its distance to the rest (mean 1-NN distance from its rows to the other sources'
    rows) and how many of its rows the selection kept -- why a max-min selector keeps more or fewer
    real images (docs/reproduction.md)."""
    out = []
    kept = np.bincount(cand.src[rows].astype(np.int64), minlength=int(cand.src.max()) + 1)
    for s in np.unique(cand.src):
        mine = cand.src == s
        f = torch.from_numpy(np.ascontiguousarray(cand.feats[mine])).to(device)
        rest = torch.from_numpy(np.ascontiguousarray(cand.feats[~mine])).to(device)
        out.append({"source": int(s), "rows": int(mine.sum()), "kept": int(kept[s]),
                    "kept_share": float(kept[s] / max(1, len(rows))),
                    "within_nn": float(M.mnnd(f)) if len(f) > 1 else None,
                    "to_others_nn": float(M.generalization_score(f, rest)) if len(rest) else None})
    return out


class Loop:
    def __init__(self, cfg: LoopConfig, run_dir: str, log=None, download: bool = False, report: bool = True,
                 logger: str = "none"):
        self.cfg, self.dir, self.download, self.report = cfg, run_dir, download, report
        self.logger_kind = logger
        self.tracker = None
        self.log = log or (lambda m: print(m, file=sys.stderr, flush=True))
        self.rank, self.world = _rank()
        self.arms = [f"{cfg.paradigm}-{s}" for s in cfg.selectors]
        self.timing: dict = {}

    # ------------------------------------------------------------------ paths and set-up
    def p(self, *parts) -> str:
        return os.path.join(self.dir, *parts)

    def iter_dir(self, arm: str, t: int) -> str:
        d = iter_path(self.dir, arm, t)
        os.makedirs(d, exist_ok=True)
        return d

    def lock(self) -> None:
        """One loop per run directory: an exclusive lock on RUN/.lock held until this process ends
        (the second process gets one line naming the holder's PID)."""
        if self.rank != 0:
            return
        os.makedirs(self.dir, exist_ok=True)
        self._lock = folder_lock(self.p(".lock"), f"{self.dir} is in use by another fastsel loop (PID {{pid}}); wait "
                                 "for it or use another --run-dir")  # released by unlock(), or at exit

    def check_config(self) -> None:
        path = self.p("config.json")
        mine = json.loads(json.dumps(self.cfg.to_json()))
        if os.path.exists(path):
            # settings added since the run was written take their defaults (what the run used)
            old = json.loads(json.dumps(load_config(self.dir).to_json()))
            # the device may differ between a run and its resumption (another GPU, another rank), and
            # a run may be extended (iterations) -- FREE_SETTINGS; config.json then records the new values
            diff = sorted(k for k in set(old) | set(mine) if k not in FREE_SETTINGS and old.get(k) != mine.get(k))
            if diff:
                raise DataError(f"{self.dir} holds a run with another configuration (differs in: "
                                f"{', '.join(diff)}); use --resume {self.dir} or a new --run-dir")
            if self.rank == 0 and any(old.get(k) != mine.get(k) for k in FREE_SETTINGS if k != "device"):
                save_json(path, dict(mine, device=old.get("device", mine["device"])))
        elif self.rank == 0:
            os.makedirs(self.dir, exist_ok=True)
            save_json(path, mine)

    STAMP = "settings.json"

    def stamp(self, d: str) -> None:
        """Record in stage folder d the settings its files are computed with (before any of them)."""
        p = os.path.join(d, self.STAMP)
        if self.rank == 0 and not os.path.exists(p):
            os.makedirs(d, exist_ok=True)
            save_json(p, {"config_sha256": self.hash, "config": result_settings(self.cfg)})

    def check_settings(self) -> None:
        """Before any work: every stage folder (real/, shared/iter_000, <arm>/iter_NNN) and every
        iteration's metrics ran with the settings of config.json, except FREE_SETTINGS; else one line
        naming the keys that differ -- a hand-edited config.json of a run in progress."""
        mine = result_settings(self.cfg)
        folders = sorted(glob.glob(self.p("*", "iter_[0-9][0-9][0-9]")),
                         key=lambda d: (os.path.basename(d), d)) + [self.p("real")]
        for d in folders:
            sp, mp = os.path.join(d, self.STAMP), os.path.join(d, "metrics.json")
            if os.path.isfile(sp):
                st = read_json(self.dir, sp)
                try:
                    old = result_settings(LoopConfig.from_json(st.get("config"), sp))
                except DataError as e:
                    raise damaged(self.dir, sp, str(e).split(": ", 1)[-1]) from None
                diff = sorted(k for k in set(old) | set(mine) if old.get(k) != mine.get(k))
                if diff:
                    what = "the real data" if d == self.p("real") else f"iteration {int(d[-3:])}"
                    shown = ", ".join(f"{k} {old.get(k)!r} -> {mine.get(k)!r}" for k in diff[:4])
                    raise DataError(f"{self.p('config.json')}: {', '.join(diff)} differ from the settings {what} "
                                    f"ran with ({d}: {shown}); only {', '.join(FREE_SETTINGS)} may change in a "
                                    "run -- put the others back, or start a new --run-dir")
            elif os.path.isfile(mp):  # no stamp (deleted): the record's hash
                rec = read_json(self.dir, mp)
                h = rec.get("config_sha256")
                if h is not None and h != self.hash:
                    raise DataError(f"{self.p('config.json')}: differs from the settings {mp} was computed with "
                                    f"(config_sha256 {str(h)[:12]}... vs {self.hash[:12]}...); put it back, or "
                                    "start a new --run-dir")

    def real(self):
        d = self.p("real")
        files = [os.path.join(d, f) for f in ("images.npy", "labels.npy", "feats.npy", "fid_feats.npy",
                                              "holdout_images.npy", "holdout_feats.npy")]
        if self.rank == 0 and not all(os.path.exists(f) for f in files):
            self.stamp(d)
            im, lab, held = load_real(self.cfg, self.download)
            save_npy(files[0], im)
            save_npy(files[1], lab)
            f = featurize(self.cfg.features, im, self.cfg.device)
            save_npy(files[2], f)
            save_npy(files[3], f if self.cfg.fid_features == self.cfg.features
                     else featurize(self.cfg.fid_features, im, self.cfg.device))
            save_npy(files[4], held)
            save_npy(files[5], featurize(self.cfg.features, held, self.cfg.device) if len(held)
                     else np.zeros((0, f.shape[1]), np.float32))
        _barrier()
        im = load_array(self.dir, files[0], 4, "u")
        if len(im) != (self.cfg.data_n or self.cfg.n):
            raise damaged(self.dir, files[0], f"{len(im)} images, expected {self.cfg.data_n or self.cfg.n}")
        lab = load_array(self.dir, files[1], 1, "iu", rows=len(im))
        f = load_array(self.dir, files[2], 2, "f", rows=len(im))
        ff = load_array(self.dir, files[3], 2, "f", rows=len(im))
        held = load_array(self.dir, files[4], 4, "u", tail=im.shape[1:], mmap=True)
        hf = load_array(self.dir, files[5], 2, "f", rows=len(held), tail=(f.shape[1],))
        if len(lab) != len(im) or len(f) != len(im) or len(ff) != len(im) or len(hf) != len(held):
            raise damaged(self.dir, d, "its files hold different numbers of rows")
        if len(lab) and lab.min() < 0:
            raise damaged(self.dir, files[1], "a negative label")
        self.num_classes = int(lab.max()) + 1 if len(lab) else 0
        self.holdout_f = hf
        return im, lab, f, ff

    def sample_count(self, arm: str) -> int:
        sel = arm.split("-", 1)[1]
        return self.cfg.pool_factor * self.cfg.n if (self.cfg.paradigm == "replace" and sel != "none") else self.cfg.n

    # ------------------------------------------------------------------ one iteration's stages
    def train_set(self, arm: str, t: int, real_f: np.ndarray) -> tuple:
        """(src, idx) of iteration t's training set."""
        if t == 0:
            return np.zeros(self.cfg.n, np.int16), np.arange(self.cfg.n, dtype=np.int64)
        d = self.iter_dir(arm, t)
        fs, fi = os.path.join(d, "train_src.npy"), os.path.join(d, "train_idx.npy")
        if self.rank == 0 and not (os.path.exists(fs) and os.path.exists(fi)):
            gens = [self.gen_feats(arm, j) for j in range(1, t + 1)]
            cand = candidate_pool(self.cfg.paradigm, real_f, gens)
            t0 = time.perf_counter()
            sel = arm.split("-", 1)[1]
            rows, info = select_from(cand, self.cfg.n, sel, vanilla=self.cfg.vanilla, seed=self.cfg.seed + t,
                                     device=self.cfg.device, return_info=True, **self.cfg.options_for(sel))
            self.timing[f"{arm}/{t}/select_s"] = time.perf_counter() - t0
            save_json(os.path.join(d, "selection.json"), info)
            save_json(os.path.join(d, "pool.json"), pool_sources(cand, rows, self.cfg.device))
            save_npy(fi, cand.idx[rows])
            save_npy(fs, cand.src[rows])
        _barrier()
        return self.check_train_set(arm, t, fs, fi)

    def check_train_set(self, arm: str, t: int, fs: str, fi: str) -> tuple:
        """Iteration t's training set as saved: (source, row) pairs inside the pool it came from."""
        src, idx = load_array(self.dir, fs, 1, "iu"), load_array(self.dir, fi, 1, "iu")
        want = None if arm.endswith("-all") else self.cfg.n
        if len(src) != len(idx) or (want is not None and len(src) != want):
            raise damaged(self.dir, fs, f"{len(src)} sources for {len(idx)} rows, expected {want or len(idx)}")
        if len(src) and not (0 <= src.min() and src.max() <= t):
            raise damaged(self.dir, fs, f"a source outside [0, {t}]")
        for s_ in np.unique(src):
            rows = self.n_real if s_ == 0 else self.sample_count(arm)
            if not 0 <= idx[src == s_].min() <= idx[src == s_].max() < rows:
                raise damaged(self.dir, fi, f"a row of source {int(s_)} outside [0, {rows})")
        return src, idx

    def sample_total(self, arm: str, t: int) -> int:
        """Samples iteration t generates: the pool of the next training set (iteration 0: the largest
        any arm needs), at least eval_samples."""
        count = max(self.sample_count(a) for a in self.arms) if t == 0 else self.sample_count(arm)
        return max(count, self.cfg.eval_samples)  # extra samples are measured, never trained on

    def check_files(self, arm: str, t: int, shape: tuple) -> None:
        """What iteration t of an arm has written so far, checked against what the loop writes: one
        line naming the first damaged file and what to do, before any work (no training is lost)."""
        d = iter_path(self.dir, arm, t)
        j = lambda f: os.path.join(d, f)  # noqa: E731
        count = self.sample_total(arm, t)
        if os.path.exists(j("samples.npy")):
            load_array(self.dir, j("samples.npy"), 4, "u", rows=count, tail=shape, mmap=True)
            if not os.path.exists(j("sample_labels.npy")):
                raise damaged(self.dir, j("sample_labels.npy"), "missing beside samples.npy")
            load_array(self.dir, j("sample_labels.npy"), 1, "iu", rows=count, mmap=True)
        for name, tail in (("feats.npy", (self.feat_dim,)), ("fid_feats.npy", None)):
            if os.path.exists(j(name)):
                load_array(self.dir, j(name), 2, "f", rows=count, tail=tail, mmap=True)
        if t > 0 and os.path.exists(j("train_src.npy")) and os.path.exists(j("train_idx.npy")):
            self.check_train_set(arm, t, j("train_src.npy"), j("train_idx.npy"))
        if t > 0 and os.path.exists(j("pool.json")):
            ps = read_json(self.dir, j("pool.json"), list)
            if not all(isinstance(x, dict) and all(v is None or isinstance(v, (int, float)) for v in x.values())
                       for x in ps):
                raise damaged(self.dir, j("pool.json"), "not a list of numbers by source")
        if t > 0 and os.path.exists(j("selection.json")):
            read_json(self.dir, j("selection.json"))
        mp = self.p(arm, f"iter_{t:03d}", "metrics.json")
        if os.path.exists(mp):
            check_record(self.dir, mp, read_json(self.dir, mp), arm, t)

    def gen_feats(self, arm: str, j: int) -> np.ndarray:
        """Selection features of generation j (the samples of iteration j - 1)."""
        f = load_array(self.dir, os.path.join(self.iter_dir(arm, j - 1), "feats.npy"), 2, "f",
                       rows=self.sample_count(arm), tail=(self.feat_dim,))
        return f[: self.sample_count(arm)]

    def trained(self, arm: str, t: int, images, labels):
        d = self.iter_dir(arm, t)
        path = os.path.join(d, "model.pt")
        N, H, W, C = images.shape
        if os.path.exists(path):
            return TR.load_model(self.cfg, path, H, C, self.num_classes)
        total = TR.train_steps_for(self.cfg, N)
        t0 = time.perf_counter()
        with tqdm(total=total, desc=f"train {arm if t else 'shared'} it{t}", unit="step", file=sys.stderr,
                  disable=self.rank != 0, leave=False, delay=1.0) as bar:
            every = max(1, total // 500)

            gpu = torch.device(self.cfg.device).type == "cuda"

            def prog(step, tot, loss):
                # on a GPU the loss is read every TR.LOSS_EVERY steps: log only the steps it was read at
                fresh = step == tot or (step % TR.LOSS_EVERY == 0 if gpu else step % every == 0)
                if self.tracker is not None and fresh:
                    self.tracker.scalar(f"train/{arm if t else 'shared'}/it{t}/loss", loss, step)
                bar.n = step
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
                bar.update(0)
            seed = self.cfg.seed * 1000 + (0 if t == 0 else 100 * (self.arms.index(arm) + 1) + t)
            model, loss = TR.train(self.cfg, images, labels, self.num_classes, d, seed, prog)
        if self.rank == 0:
            TR.save_model(model, path)
        _barrier()
        self.timing[f"{arm}/{t}/train_s"] = time.perf_counter() - t0
        self.timing[f"{arm}/{t}/train_img_per_s"] = total * self.cfg.batch_size / max(1e-9, time.perf_counter() - t0)
        self.log(f"  trained {'shared' if t == 0 else arm} iteration {t}: {total} steps, final loss {loss:.4f}")
        return model

    def samples(self, arm: str, t: int, model, size: int, channels: int):
        d = self.iter_dir(arm, t)
        out, lab_path = os.path.join(d, "samples.npy"), os.path.join(d, "sample_labels.npy")
        count = self.sample_total(arm, t)
        if not os.path.exists(out):
            labels = (np.arange(count) % max(1, self.num_classes)).astype(np.int64)
            t0 = time.perf_counter()
            stage = 0 if t == 0 else 1000 * (self.arms.index(arm) + 1) + t
            with tqdm(total=count, desc=f"sample {arm if t else 'shared'} it{t}", unit="img", file=sys.stderr,
                      leave=False, delay=1.0) as bar:
                im = SM.sample(self.cfg, model, count, size, channels, stage, d, labels, self.num_classes,
                               progress=bar.update)
            save_npy(lab_path, labels)
            save_npy(out, im)
            SM.clear_parts(d)
            self.timing[f"{arm}/{t}/sample_img_per_s"] = count / max(1e-9, time.perf_counter() - t0)
        for name, kind in (("feats.npy", self.cfg.features), ("fid_feats.npy", self.cfg.fid_features)):
            fp = os.path.join(d, name)
            if not os.path.exists(fp):
                im = np.asarray(load_array(self.dir, out, 4, "u", rows=count))
                ref = os.path.join(d, "feats.npy")
                f = (load_array(self.dir, ref, 2, "f") if name == "fid_feats.npy" and kind == self.cfg.features
                     else featurize(kind, im, self.cfg.device))
                save_npy(fp, f)
        return d

    def measure(self, arm: str, t: int, src, train_f, real_ff, train_im=None) -> dict:
        d = self.iter_dir(arm, t)
        n = self.cfg.n
        m = max(n, self.cfg.eval_samples)  # the measured samples: n, or eval_samples when more
        gen_f = load_array(self.dir, os.path.join(d, "feats.npy"), 2, "f")[:m]
        gen_ff = load_array(self.dir, os.path.join(d, "fid_feats.npy"), 2, "f")[:n]
        dev = self.cfg.device
        tf = torch.from_numpy(train_f).to(dev)
        gf = torch.from_numpy(gen_f).to(dev)
        ent = M.kl_entropy(tf) if len(tf) > 1 else None
        hf = getattr(self, "holdout_f", None)
        copy = copy_ho = pix = None
        if train_im is not None and len(train_im) > 1:  # the ratio test on pixels in [0, 1], as in the literature
            gen_im = load_array(self.dir, os.path.join(d, "samples.npy"), 4, "u", mmap=True)[:m]
            hp = self.p("real", "holdout_images.npy")
            held = load_array(self.dir, hp, 4, "u") if os.path.exists(hp) else np.zeros((0,))
            pix = (_pixels(gen_im, dev), _pixels(train_im, dev), _pixels(held, dev))
            copy = M.copy_fraction(pix[0], pix[1])
            # the control: fresh real images scored by the same test (the test's false-positive rate)
            copy_ho = M.copy_fraction(pix[2], pix[1]) if len(held) else None
        em = self.cfg.entropy_m
        fixed = self.fixed_reference(gf, pix, t)
        rec = {
            "arm": arm, "iteration": t, "n_train": int(len(src)), "n_measured": int(len(gen_f)),
            "gs": _finite(M.generalization_score(gf, tf)),
            "gs_norm": (_finite(M.gs_normalized(gf, tf, torch.from_numpy(hf).to(dev)))
                        if hf is not None and len(hf) else None),
            "copy_fraction": copy,
            "copy_fraction_holdout": copy_ho if copy is not None else None,
            "entropy": _finite(ent),
            "entropy_fixed": _finite(M.kl_entropy_fixed(tf, m=em, seed=self.cfg.seed + t)) if 1 < em <= len(tf) else None,
            "entropy_m": em,
            **fixed,
            "mnnd": _finite(M.mnnd(tf)) if len(tf) > 1 else None,
            "cov_trace": _finite(M.cov_trace(tf)),
            "vendi": _finite(M.vendi_score(tf)) if bool((tf.abs().sum(1) > 0).all()) else None,
            # the eigen form: well defined for the rank-deficient covariances of small runs
            "fid": _finite(_nonneg(F.frechet_eigh(F.stats(gen_ff), F.stats(real_ff)))),
            "shares": source_shares(src, t + 1),
            "features": self.cfg.features, "fid_features": self.cfg.fid_features,
            "config_sha256": self.hash,  # the settings it ran with: d/settings.json, fastsel.loop.config.config_hash
        }
        rec.update(self.class_stats(d))
        pool = os.path.join(d, "pool.json")
        if t > 0 and os.path.exists(pool):
            rec["pool_sources"] = read_json(self.dir, pool, list)
        sel = os.path.join(d, "selection.json")
        if t > 0 and os.path.exists(sel):  # the threshold filter's tau0, tau_end, passes, decays, ...
            rec["selection"] = read_json(self.dir, sel)
        return rec

    def fixed_reference(self, gf, pix, t: int) -> dict:
        """The measures whose reference does not change with the arm (docs/analysis.md): the held-out
        real rows are split in two halves, A calibrates and B is the null control.

        - novelty_real: GS(samples -> this seed's real images) / GS(held-out A -> the same), in the
          feature space; the same denominator for every arm and iteration of a seed. 1: as far from the
          real images as fresh real data; 0: copies of them. novelty_real_holdout: held-out B scored
          the same way (the null control, ~1).
        - entropy_samples: the KL entropy at m rows of the model's own samples (not of the set the
          selector chose, which max-min selection maximises by construction).
        - copy_abs: the share of samples whose nearest training image (pixels, the arm's own training
          set) is closer than a distance calibrated on held-out A against the real images
          (``metrics.copy_threshold``); copy_abs_holdout: held-out B against the arm's training set.
        """
        dev, em = self.cfg.device, self.cfg.entropy_m
        out = {"novelty_real": None, "novelty_real_holdout": None, "entropy_samples": None,
               "copy_abs": None, "copy_abs_holdout": None, "copy_tau": None}
        if 1 < em <= len(gf):
            out["entropy_samples"] = _finite(M.kl_entropy_fixed(gf, m=em, seed=self.cfg.seed + 7919 + t))
        hf, rf = getattr(self, "holdout_f", None), getattr(self, "real_f", None)
        if hf is None or rf is None or len(hf) < 4 or len(rf) < 1:
            return out
        half = len(hf) // 2
        rft, cal, ctl = (torch.from_numpy(np.asarray(a)).to(dev) for a in (rf, hf[:half], hf[half:]))
        out["novelty_real"] = _finite(M.gs_normalized(gf, rft, cal))
        out["novelty_real_holdout"] = _finite(M.gs_normalized(ctl, rft, cal))
        if pix is not None and len(pix[2]) >= 4:  # pix: the samples, the training set, held-out (measure's)
            gen, tr, held = pix
            hh = len(held) // 2
            tau = M.copy_threshold(held[:hh], _pixels(self.real_im, dev))
            out["copy_tau"] = tau
            if tau > 0:  # 0: held-out digits that copy real ones (a damaged split): no threshold to apply
                out["copy_abs"] = M.copy_fraction_abs(gen, tr, tau)
                out["copy_abs_holdout"] = M.copy_fraction_abs(held[hh:], tr, tau)
        return out

    def class_stats(self, d: str) -> dict:
        """MNIST-family runs: the LeNet classifier's mean confidence and the entropy of the
        predicted-label histogram of the generated samples (mode collapse lowers it)."""
        src = data.source(self.cfg.dataset)
        name = src.classifier if src is not None else None
        if name not in lenet.DATASETS:  # no classifier, or one that is not a LeNet
            return {}
        model, _ = lenet.load(name)
        im = load_array(self.dir, os.path.join(d, "samples.npy"), 4, "u", mmap=True)[: self.cfg.n]
        return lenet.class_stats(model, np.asarray(im))

    # ------------------------------------------------------------------ driver
    def run(self) -> list:
        cfg = self.cfg
        top = os.path.abspath(self.dir)  # the outermost folder this run creates
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        existed = os.path.exists(top)
        if self.rank == 0:  # a folder of the user's own files is refused before anything is written
            check_run_folder(self.dir)
        fresh = not os.path.exists(self.p("config.json"))
        self.lock()  # outside the clean-up below: a refused second process touches nothing
        try:
            return self._run(top, existed, fresh)
        finally:  # released on any exit, not only the process's (a caller of run_loop may go on)
            if self.tracker is not None:
                self.tracker.close()
                self.tracker = None
            self.unlock()

    def unlock(self) -> None:
        f, self._lock = getattr(self, "_lock", None), None
        if f is not None:
            f.close()

    def _run(self, top: str, existed: bool, fresh: bool) -> list:
        cfg = self.cfg
        self.hash = config_hash(cfg)
        try:
            self.check_config()
            self.check_settings()
            if self.rank == 0 and not fresh:  # this run's own folders, under its lock
                for f in stale_temp_files(self.dir):
                    os.unlink(f)
            real_im, real_lab, real_f, real_ff = self.real()
        except BaseException:
            # a run that fails before its first step leaves nothing behind
            if fresh and self.rank == 0:
                if not existed:
                    shutil.rmtree(top, ignore_errors=True)
                else:
                    shutil.rmtree(self.p("real"), ignore_errors=True)
                    if os.path.exists(self.p("config.json")):
                        os.unlink(self.p("config.json"))
            raise
        _, H, W, C = real_im.shape
        self.feat_dim, self.n_real = real_f.shape[1], len(real_f)
        self.real_f, self.real_im = real_f, real_im  # the fixed references of novelty_real and copy_abs
        if self.logger_kind != "none" and self.rank == 0:
            self.tracker = Logger(self.logger_kind, self.dir, cfg.to_json())
        for t in range(cfg.iterations):  # what earlier runs wrote, checked before any work
            for arm in self.arms:
                self.check_files(arm, t, (H, W, C))
        records = []
        for t in range(cfg.iterations):
            for arm in self.arms:
                mpath = os.path.join(self.p(arm, f"iter_{t:03d}"), "metrics.json")
                if os.path.exists(mpath):
                    records.append(check_record(self.dir, mpath, read_json(self.dir, mpath), arm, t))
                    continue
                self.log(f"iteration {t}, {arm}")
                self.stamp(self.iter_dir(arm, t))
                src, idx = self.train_set(arm, t, real_f)
                ims, labs, feats = gather_rows(self.dir, arm, src, idx, (real_im, real_lab, real_f))
                model = self.trained(arm, t, ims, labs)
                if self.rank == 0:
                    self.samples(arm, t, model, H, C)
                    rec = self.measure(arm, t, src, feats, real_ff, ims)
                    self.stamp(self.p(arm, f"iter_{t:03d}"))
                    save_json(mpath, rec)
                    records.append(rec)
                    if self.tracker is not None:
                        for k, v in rec.items():
                            if isinstance(v, float):  # the measures (not iteration, n_train, entropy_m)
                                self.tracker.scalar(f"metrics/{k}/{arm}", v, t)
                        sp = os.path.join(self.p(arm, f"iter_{t:03d}"), "samples.npy")
                        if os.path.exists(sp):
                            self.tracker.images(f"samples/{arm}", np.load(sp, mmap_mode="r")[:16], t)
                    self.log("  " + ", ".join(f"{k}={v:.4g}" for k, v in rec.items()
                                              if isinstance(v, float)))
                _barrier()
                TR.maybe_kill("iteration")
            if self.rank == 0:
                self.write_tables(records)
                if self.report:
                    write_report([self.dir], quiet=True)
        if self.rank == 0:
            self.write_tables(records)
        return records

    def write_tables(self, records: list) -> None:
        save_json(self.p("metrics.json"), {"config": self.cfg.to_json(), "config_sha256": self.hash,
                                           "iterations": records})
        buf = io.StringIO()
        w = csv.writer(buf)
        n_src = max((len(r["shares"]) for r in records), default=1)
        cols = shown(records, "csv")  # ..., share_real, then each generation's share
        w.writerow(["arm", "iteration"] + [c.key for c in cols] + [f"share_gen{j}" for j in range(1, n_src)])
        for r in records:
            w.writerow([r["arm"], r["iteration"]] + [c.value(r) for c in cols] + list(r["shares"][1:])
                       + [""] * (n_src - len(r["shares"])))
        save_text(self.p("metrics.csv"), buf.getvalue())
        if self.timing:
            old = {}
            tp = self.p("timing.json")
            if os.path.exists(tp):
                try:
                    old = read_json(self.dir, tp)
                except DataError:  # timings are informational: a damaged file is started afresh
                    old = {}
            old.update(self.timing)
            save_json(tp, old)


def run_loop(cfg: LoopConfig, run_dir: str, log=None, download: bool = False, report: bool = True,
             logger: str = "none") -> list:
    """Run (or resume) the self-consuming loop: train, sample, measure and select, iteration by iteration.

    Every finished step is on disk (atomically), so a killed run resumes where it stopped; a run folder
    holding another configuration is refused.

    Args:
        cfg: the settings (:class:`fastsel.loop.LoopConfig`; a preset via :func:`fastsel.loop.preset`).
        run_dir: the run's folder (created; resumed when it holds this configuration).
        log: called with each progress line (default: print to stderr).
        download: fetch a dataset that is not cached (users' machines; nothing downloads by default).
        report: redraw ``run_dir/report`` after every iteration.
        logger: ``"none"``, ``"tensorboard"`` or ``"wandb"``: also log there (:mod:`fastsel.loop.logger`).

    Returns:
        The metric records, one dict per arm and iteration (the rows of ``run_dir/metrics.json``).

    Raises:
        fastsel.io.DataError: the dataset or a file in ``run_dir`` cannot be read, ``run_dir`` holds a run
            with another configuration, or another process is using it.
    """
    torch.use_deterministic_algorithms(False)
    return Loop(cfg, run_dir, log, download, report, logger).run()


def _nonneg(v: float) -> float:
    """A distance computed a little below 0 by rounding is 0; a clearly negative value (a bug) and
    NaN stay as they are, to be seen."""
    return 0.0 if -1e-3 < v < 0 else v
