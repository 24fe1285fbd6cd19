"""Under torchrun: the ranks embed their blocks of shards and select together (the sharded pool)."""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist

from .. import _dist
from ..errors import DataError, FastselError
from ..io import save_json
from ..selectors import check_options, get_selector
from .embed import embed_source
from .output import _check_inputs_kept, _write_pool_files, owned_out
from .pool import _rank_rows, _start_position, coverage_of
from .run import _check_applies, _curate_one, _finish, _peak_rss_mib
from .sources import _first_line, _quiet_datasets, open_source


class _Ranks:
    """The ranks of a torchrun launch, and the one rule that keeps them together: every step ends with
    all ranks saying whether it failed, so a failure anywhere stops every rank with one line naming the
    rank and its cause -- no rank is left waiting in a collective."""

    def __init__(self):
        self.dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def gather(self, obj) -> list:
        out = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def step(self, fn: Callable, *a, **kw):
        err, out = None, None
        try:
            out = fn(*a, **kw)
        except Exception as e:  # noqa: BLE001 -- told to every rank below, then raised
            err = e
        said = self.gather(None if err is None else (_first_line(err) or type(err).__name__))
        failed = [(r, m) for r, m in enumerate(said) if m is not None]
        if not failed:
            return out
        if err is not None and not isinstance(err, FastselError):
            raise err  # not an input a user can fix: its traceback (the other ranks stop with one line)
        r, m = (self.rank, said[self.rank]) if err is not None else failed[0]
        cls = type(err) if err is not None else DataError
        raise cls(f"rank {r} of {self.world}: {m}" + ("" if err is not None else " (every rank stops)")) from None


class _ShardedPool:
    """The pool as the ranks hold it: rank r keeps the rows it embedded, a contiguous block of the
    readable rows in source order; what the report needs crosses the group as n rows, never the pool."""
    main = False

    def __init__(self, x: torch.Tensor, rows: np.ndarray, R: _Ranks):
        self.R, self.x, self.rows = R, x, rows
        counts = R.gather(len(rows))
        self.lo = sum(counts[:R.rank])
        self.hi = self.lo + len(rows)
        self.M = sum(counts)
        self.main = R.rank == 0

    def _mine(self, gi):
        gi = torch.as_tensor(gi, dtype=torch.int64).reshape(-1)
        return gi, (gi >= self.lo) & (gi < self.hi)

    def take(self, gi) -> torch.Tensor:
        gi, m = self._mine(gi)
        out = torch.zeros((len(gi), self.x.shape[1]), dtype=self.x.dtype)
        out[m] = self.x[gi[m] - self.lo]
        self.R.dist.all_reduce(out)  # one rank holds each row, the others add zeros: exact
        return out

    def source_index(self, gi) -> np.ndarray:
        gi, m = self._mine(gi)
        out = torch.zeros(len(gi), dtype=torch.int64)
        out[m] = torch.from_numpy(self.rows[(gi[m] - self.lo).numpy()])
        self.R.dist.all_reduce(out)
        return out.numpy()

    def coverage(self, sub: torch.Tensor) -> tuple:
        if len(self.x):
            c, d = coverage_of(self.x, sub)
            mx, total = c["max"], float(d.sum())
        else:
            d, mx, total = torch.zeros(0, dtype=torch.float64), -math.inf, 0.0
        t = torch.tensor([mx], dtype=torch.float64)
        self.R.dist.all_reduce(t, op=self.R.dist.ReduceOp.MAX)
        sums = torch.tensor([total], dtype=torch.float64)
        self.R.dist.all_reduce(sums)
        return {"max": float(t), "mean": float(sums) / self.M}, d

    def nearest_rejected(self, idx, d: torch.Tensor, k: int) -> tuple:
        gi, m = self._mine(idx)
        chosen = torch.zeros(len(self.x), dtype=torch.bool)
        chosen[gi[m] - self.lo] = True
        rest = torch.nonzero(~chosen)[:, 0]
        order = rest[torch.argsort(d[rest], stable=True)][:k]
        mine = [(float(d[o]), int(o) + self.lo) for o in order]
        best = sorted(c for part in self.R.gather(mine) for c in part)[:k]  # ties: the lower row, as stable argsort
        return (torch.tensor([g for _, g in best], dtype=torch.int64),
                torch.tensor([v for v, _ in best], dtype=torch.float64))


def _curate_ranks(source, n, out_dir, *, column, split, features, embeddings, key, method, seed, start, image_size,
                  copy, dedup, batch_size, shard_rows, device, quiet, log, grid, t_all, options) -> dict:
    """``torchrun ... -m fastsel -- curate``: each rank embeds its contiguous block of the embedding
    shards; a selector with a sharded form (greedy, threshold) runs across the ranks on the rows each
    embedded (fastsel.distributed: no rank holds the pool); any other selector, --dedup and
    --embeddings run on rank 0 over the whole pool read from the shards. Rank 0 writes every output;
    they equal one process's (selected.csv, the subset, the report's figures)."""
    # a rank may wait long for the others (an uneven resume, rank 0 writing embeddings.npy or selecting
    # alone): collectives wait up to FASTSEL_DIST_TIMEOUT seconds, 12 h by default, not torch's 30 min
    with _dist.group("cpu", _dist.wait_limit(12 * 3600)):
        R = _Ranks()
        main = R.rank == 0
        say = log if main else (lambda *a, **k: None)
        with contextlib.ExitStack() as held:
            held.enter_context(_quiet_datasets(quiet or not main))

            def opened():
                src_ = open_source(source, column, split)
                _check_applies(src_, n, start, column, copy)
                _check_inputs_kept(out_dir, embeddings)
                return src_
            src = R.step(opened)
            seen = R.gather((len(src), src.fingerprint()))
            R.step(lambda: None if len(set(seen)) == 1 else _raise(DataError(
                f"the ranks read different sources ({source}: rank 0 sees {seen[0][0]} rows, rank "
                f"{next(r for r, v in enumerate(seen) if v != seen[0])} sees another set): every rank must read "
                "the same files")))
            R.step(lambda: held.enter_context(owned_out(out_dir, src)) if main else None)  # rank 0 holds the lock
            sel = get_selector(method)
            sharded = sel.sharded is not None and dedup is None and embeddings is None
            R.step(check_options, method, options, sharded=sharded)  # an option its sharded form lacks: one line
            dev = device  # each rank on its LOCAL_RANK GPU: no --device, or a bare --device cuda
            if (dev is None and torch.cuda.is_available()) or dev == "cuda":
                dev = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            info = None
            if embeddings is None:
                part = R.step(embed_source, src, features, out_dir, image_size=image_size, batch_size=batch_size,
                              shard_rows=shard_rows, device=dev, quiet=quiet or not main, log=say,
                              part=(R.rank, R.world), collect=False)
                infos = R.gather(part[3])
                secs = max(i["seconds"] for i in infos)
                done = sum(i["embedded"] for i in infos)
                info = {"seconds": secs, "load_seconds": max(i["load_seconds"] for i in infos), "embedded": done,
                        "img_per_s": done / secs if done and secs > 0 else None, "shape": infos[0]["shape"],
                        "ranks": R.world}
            kw = dict(features=features, embeddings=embeddings, key=key, method=method, seed=seed, start=start,
                      image_size=image_size, copy=copy, dedup=dedup, batch_size=batch_size, shard_rows=shard_rows,
                      device=dev, quiet=quiet, log=say, grid=grid, t_all=t_all, options=options)
            if not sharded:
                why = ("--embeddings" if embeddings is not None else "--dedup" if dedup is not None
                       else f"{method} has no sharded form")
                say(f"note: {why}: rank 0 selects over the whole pool (read from disk); the other ranks wait")
                res = R.step(lambda: _curate_one(src, n, out_dir, **kw, emb_info=info, ranks=R.world,
                                                 note_resume=False) if main else None)
                rss = R.gather(_peak_rss_mib())
                res = R.gather(res)[0]
                res["peak_rss_mib"] = rss
                if main:
                    save_json(os.path.join(out_dir, "curate.json"), res)
                return res
            _, rows, bad, einfo = part
            d = max(R.gather(einfo["dim"]))
            counts = R.gather(len(rows))
            lo, M = sum(counts[:R.rank]), sum(counts)
            bad_all = [b for part_ in R.gather(bad) for b in part_]
            R.step(lambda: _write_pool_files(out_dir, src, shard_rows, M, d, bad_all, say) if main else None)
            x = R.step(_rank_rows, out_dir, lo, len(rows), d, say)  # from rank 0's embeddings.npy (shared --out)
            pool = _ShardedPool(x, rows, R)

            def checked_start():
                if n > pool.M:
                    raise FastselError(f"--n {n} is more than the {pool.M} readable rows")
                return None if start is None else _start_position(rows, start, pool.lo)
            pos = R.step(checked_start)
            if start is not None:
                got = [p for p in R.gather(pos) if p is not None]
                R.step(lambda: None if got else _raise(FastselError(
                    f"--start {start}: that source row is {'not readable' if start < len(src) else 'out of range'}")))
                pos = got[0]
            t0 = time.perf_counter()
            out_ = R.step(sel.sharded, x, n, start=pos, seed=seed, **options)
            idx = (out_[0] if isinstance(out_, tuple) else out_).cpu()
            t_sel = time.perf_counter() - t0
            res = R.step(_finish, src, pool, pool.M, lambda p: p, idx, out_dir, n=n, method=method, seed=seed,
                         features=features, embeddings=None, dim=d, unreadable=len(bad_all), dedup=None,
                         dedup_info=None, emb_info=info, t_sel=t_sel, copy=copy, grid=grid, log=say, t_all=t_all,
                         ranks=R.world, options=options)
            rss = R.gather(_peak_rss_mib())
            res = R.gather(res)[0]  # rank 0's summary on every rank
            res["peak_rss_mib"] = rss
            if main:
                save_json(os.path.join(out_dir, "curate.json"), res)
            return res


def _raise(e: BaseException):
    raise e
