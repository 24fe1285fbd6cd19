"""The loop, embed and fid on one GPU (issue 27, item 1), and torch-quickfps's CUDA build on its own
grid (item 3), in one run that writes as it goes.

    python bench/gpu_pipeline.py OUT_DIR            # on the GPU machine (bench/gpu_check.sh calls it)
    python bench/gpu_pipeline.py OUT_DIR --quick    # the same stages, tiny, on this CPU (a dry check)

Stages (each one's result is added to OUT_DIR/pipeline.json and pipeline.md when it ends, so a run
stopped by its time limit keeps what finished):

1. models: no weights exist offline, so the two feature networks are the real architectures with
   random weights -- a DINOv2-small (transformers ``Dinov2Model``, 12 x 384, patch 14) saved as a hub
   folder and read through ``FASTSEL_DINOV2_PATH``, and torchvision's InceptionV3 (pool3, 2048-d)
   traced to TorchScript and read through ``FASTSEL_INCEPTION_PATH``: the code paths users run, with
   the same compute as the real weights (torchvision's Inception is not pytorch-fid's variant bit
   for bit; the layer shapes and FLOPs are the same).
2. embed: ``fastsel bench embed`` on the device for both networks, CIFAR-shaped uint8 images.
3. loop throughput: ``fastsel bench loop`` with the ``paper`` UNet, fp16 autocast + grad scaler,
   batch 128, against a bare diffusers loop and ``DDPMPipeline`` (1000 DDPM steps).
4. estimate of ``fastsel loop cifar10 --preset paper`` from the measured rates and the preset's
   resolved settings (``--dry-run --json``).
5. every registered selector on device features (8,192 x 384, n = 512): seconds each.
6. torch-quickfps's CUDA build (when importable) beside ``fastsel.greedy_sets`` on its grid
   (8 x 10,000 x 1,024, K = 2,500), exactness against float64 picks.
7. curate: ``fastsel curate`` on a folder of seeded synthetic PNGs with DINOv2 features on the device
   (greedy; then facility after SemDeDup, with planted copies as its known answer), its embedding
   rate beside stage 2's, and where its wall time goes (embedding, selection, the rest).
8. end to end (last: the longest, and measured once already, on 2026-12-04, so a time limit cuts it
   first): ``fastsel loop`` on a seeded synthetic CIFAR-shaped set (no download exists there) with
   the ``paper`` preset cut to a few hundred steps, 1000-step DDPM sampling, the three arms, DINOv2
   selection features and Inception FID on the device; then ``fastsel report``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastsel.io import save_json, save_text  # noqa: E402

RESULTS: dict = {"stages": {}, "errors": {}}


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def record(out, name, value, md_lines):
    RESULTS["stages"][name] = value
    save_json(os.path.join(out, "pipeline.json"), RESULTS)
    RESULTS.setdefault("md", []).extend(md_lines)
    save_text(os.path.join(out, "pipeline.md"), "\n".join(RESULTS["md"]) + "\n")
    print("\n".join(md_lines), flush=True)


def stage(out, name, fn):
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        fn()
    except Exception as e:  # a broken stage is recorded and the next one runs
        import traceback
        traceback.print_exc()
        RESULTS["errors"][name] = f"{type(e).__name__}: {e}"[:2000]
        save_json(os.path.join(out, "pipeline.json"), RESULTS)
        RESULTS.setdefault("md", []).append(f"\n**{name} failed**: `{RESULTS['errors'][name][:300]}`\n")
        save_text(os.path.join(out, "pipeline.md"), "\n".join(RESULTS["md"]) + "\n")
    print(f"== {name}: {time.perf_counter() - t0:.1f} s", flush=True)


def make_models(root, quick):
    import transformers as tr
    os.makedirs(root, exist_ok=True)
    torch.manual_seed(0)
    if quick:
        cfg = tr.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2,
                              patch_size=14, image_size=224)
    else:  # facebook/dinov2-small's architecture
        cfg = tr.Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                              patch_size=14, image_size=518, layerscale_value=1.0)
    dino = os.path.join(root, "dinov2-s-random")
    tr.Dinov2Model(cfg).save_pretrained(dino)
    if quick:
        class Pool(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 2048, 8, stride=8)

            def forward(self, x):
                return torch.relu(self.conv(x)).mean(dim=(2, 3))
        net = Pool().eval()
    else:
        import torchvision
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        net = net.eval()
    inc = os.path.join(root, "inception-random.pt")
    import warnings
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.jit.trace(net, torch.zeros(1, 3, 299, 299)).save(inc)
    os.environ["FASTSEL_DINOV2_PATH"] = dino
    os.environ["FASTSEL_INCEPTION_PATH"] = inc
    return {"dinov2": dino, "dinov2_params": sum(p.numel() for p in tr.Dinov2Model(cfg).parameters()),
            "inception": inc, "inception_params": sum(p.numel() for p in net.parameters())}


def synthetic_cifar(path, count=1024, seed=0):
    """Seeded 32x32x3 uint8 images: smooth colour fields (4x4 noise upsampled) -- distinct images with
    structure, so copies and novelty mean something."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(count, 3, 4, 4, generator=g)
    img = torch.nn.functional.interpolate(low, size=(32, 32), mode="bicubic", align_corners=False).clamp(0, 1)
    arr = (img.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    np.savez(path, images=arr, labels=np.zeros(count, np.int64))
    return arr.shape


def cli(args, log, timeout):
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "fastsel", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout)
    with open(log, "a") as f:
        f.write(f"$ fastsel {' '.join(args)}\n{r.stdout}\n(exit {r.returncode}, {time.perf_counter() - t0:.1f} s)\n")
    if r.returncode != 0:
        raise RuntimeError(f"fastsel {args[0]} exit {r.returncode}: {r.stdout[-1500:]}")
    return r.stdout, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--quick", action="store_true", help="tiny sizes on the CPU: checks the script, measures nothing")
    ap.add_argument("--skip", default="quickfps-baseline",
                    help="comma list of stage names to skip (quickfps-baseline: its 13.5 s-a-call vanilla FPS)")
    ap.add_argument("--order", default="models,embed,loop,estimate,selectors,quickfps,curate,e2e",
                    help="the stages, in the order they run")
    ap.add_argument("--loop-steps", type=int, default=100, help="loop throughput: training steps timed")
    ap.add_argument("--loop-samples", type=int, default=256, help="loop throughput: images sampled (1000 steps)")
    ap.add_argument("--e2e-n", type=int, default=16, help="end to end: training-set size")
    ap.add_argument("--e2e-steps", type=int, default=60, help="end to end: training steps per model")
    ap.add_argument("--curate-images", type=int, default=2048, help="curate: images in the synthetic folder")
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    work = os.path.join(out, "..", "fastsel_pipeline_work") if a.quick else "/tmp/fastsel_pipeline_work"
    work = os.path.abspath(work)
    os.makedirs(work, exist_ok=True)
    skip = set(filter(None, a.skip.split(",")))
    device = "cpu" if a.quick else "cuda"
    q = a.quick
    log = os.path.join(out, "pipeline_cli.log")
    RESULTS["meta"] = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (--quick)",
                       "torch": torch.__version__, "cuda": torch.version.cuda, "python": sys.version.split()[0],
                       "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "quick": q,
                       "commit": os.environ.get("FASTSEL_COMMIT", "")}
    RESULTS["md"] = [f"# The GPU path end to end -- {RESULTS['meta']['device']}, torch {torch.__version__}, "
                     f"{RESULTS['meta']['date']}, commit {RESULTS['meta']['commit'] or '?'}", ""]
    rates = {}

    def models():
        m = make_models(os.path.join(work, "models"), q)
        record(out, "models", m, [f"models (random weights, real architectures): DINOv2-small "
                                  f"{m['dinov2_params'] / 1e6:.1f} M parameters, InceptionV3 {m['inception_params'] / 1e6:.1f} M", ""])

    def embed():
        from fastsel.benchmarks import embed as E
        rows = ["## embed on the device: `fastsel embed` vs a bare `model(x)` loop (same batches, preprocessed)", "",
                "| network | images | batch | bare (img/s) | fastsel embed (img/s) | fastsel / bare |", "|---|---|---|---|---|---|"]
        res = {}
        for feats in ("inception", "dinov2-s"):
            n = 64 if q else 4096
            r = E.run(SimpleNamespace(features=feats, images=n, batch_size=32 if q else 256, device=device, size=32,
                                      channels=3, out_dir=work))
            res[feats] = r
            rates[feats] = r["embed_img_per_s"]
            rows.append(f"| {feats} | {n} | {r['batch_size']} | {r['bare_img_per_s']:.0f} | {r['embed_img_per_s']:.0f} "
                        f"| {r['ratio']:.3f} |")
        record(out, "embed", res, rows + [""])

    def loop_bench():
        from fastsel.benchmarks import loop as L
        ns = SimpleNamespace(unet="tiny" if q else "paper", size=32, channels=3, batch_size=8 if q else 128,
                             steps=3 if q else a.loop_steps, sample_count=4 if q else a.loop_samples, sample_steps=3 if q else 1000,
                             device=device, mixed_precision="no" if q else "fp16", repeats=1, out_dir=work)
        r = L.run(ns)
        rates["train"] = r["train_img_per_s"]["fastsel"]
        rates["sample"] = r["sample_img_per_s"]["fastsel"]
        md = open(os.path.join(work, "bench_loop.md")).read().strip().splitlines()
        record(out, "loop_throughput", r, ["## loop throughput: `fastsel bench loop` (fastsel's train/sample vs bare "
                                           "diffusers, same GPU, same run)", ""] + md[3:] + ["", md[0], md[1], ""])

    def estimate():
        txt, _ = cli(["loop", "cifar10", "--preset", "paper", "--dry-run", "--json"], log, 120)
        c = json.loads(txt)
        arms, iters = len(c["selectors"]), c["iterations"]
        trainings = 1 + arms * (iters - 1)  # iteration 0 is shared by the arms
        img_train = trainings * c["steps_per_iteration"] * c["batch_size"]
        samples = trainings * (c["samples_per_iteration"] + c["eval_samples"])
        t_train = img_train / rates["train"]
        t_sample = samples / rates["sample"]
        # features: every generated pool through DINOv2 (selection, GS, entropy) and Inception (FID), plus the real set
        t_feat = (samples + 50000) * (1 / rates["dinov2-s"] + 1 / rates["inception"])
        total = t_train + t_sample + t_feat
        est = {"trainings": trainings, "train_images": img_train, "sampled_images": samples, "train_s": t_train,
               "sample_s": t_sample, "features_s": t_feat, "total_h": total / 3600, "config": c}
        record(out, "paper_estimate", est, [
            "## `fastsel loop cifar10 --preset paper`, estimated from the rates above", "",
            f"{arms} arms x {iters} iterations, iteration 0 shared: {trainings} trainings of "
            f"{c['steps_per_iteration']:,} steps x batch {c['batch_size']} = {img_train:,} training images; "
            f"{samples:,} sampled images ({c['sample_steps']} DDPM steps); DINOv2 + Inception features of the "
            f"samples and the 50,000 real images.", "",
            "| part | hours |", "|---|---|", f"| train | {t_train / 3600:.1f} |", f"| sample | {t_sample / 3600:.1f} |",
            f"| features | {t_feat / 3600:.2f} |", f"| **total** | **{total / 3600:.1f}** |", ""])

    def end_to_end():
        data = os.path.join(work, "synth-cifar.npz")
        shape = synthetic_cifar(data, 256 if q else 1024)
        run_dir = os.path.join(work, "run")
        n = 16 if q else a.e2e_n
        args = ["loop", data, "--preset", "paper", "-n", str(n), "--iterations", "2",
                "--train-steps", "2" if q else str(a.e2e_steps), "--warmup-steps", "0" if q else "50",
                "--sample-steps", "2" if q else "1000", "--eval-samples", str(n // 2 if q else n),
                "--holdout", str(n), "--run-dir", run_dir, "--device", device]
        if q:
            args += ["--unet", "tiny", "--mixed-precision", "no"]
        txt, secs = cli(args, log, 100 if q else 280)
        rep = os.path.join(work, "report")
        cli(["report", run_dir, "--out", rep], log, 120)
        pngs = sorted(f for f in os.listdir(rep) if f.endswith(".png"))
        tail = [ln for ln in txt.strip().splitlines() if ln.strip() and "it/s]" not in ln and "%|" not in ln][-14:]
        record(out, "end_to_end", {"args": args, "seconds": secs, "data_shape": list(shape), "report_pngs": pngs,
                                   "stdout_tail": tail},
               ["## end to end: `fastsel " + " ".join(a if "/" not in a else os.path.basename(a) for a in args) + "`",
                "", f"synthetic CIFAR-shaped set {tuple(shape)}; wall {secs:.0f} s; `fastsel report` drew "
                f"{len(pngs)} PNGs. The run's last lines:", "", "```", *tail, "```", ""])

    def selectors():
        import fastsel
        from fastsel.selectors import selector_names
        g = torch.Generator(device=device).manual_seed(0)
        N, d, n = (512, 16, 32) if q else (8192, 384, 512)
        x = torch.randn(N, d, generator=g, device=device)
        rows = [f"## every registered selector on device features ({N:,} x {d}, n = {n})", "",
                "| selector | seconds | distinct picks |", "|---|---|---|"]
        res = {}
        for name in selector_names():
            try:
                fastsel.select(x[:256], 8, name)  # warm-up
                sync(device)
                t0 = time.perf_counter()
                idx = fastsel.select(x, n, name)
                sync(device)
                t = time.perf_counter() - t0
                res[name] = {"seconds": t, "distinct": int(torch.unique(idx).numel())}
                rows.append(f"| {name} | {t:.3f} | {res[name]['distinct']} |")
            except Exception as e:
                res[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
                rows.append(f"| {name} | failed: {res[name]['error'][:120]} | |")
        record(out, "selectors", res, rows + [""])

    def quickfps():
        try:
            import torch_quickfps as qf
        except ImportError as e:
            record(out, "quickfps", {"skipped": str(e)}, [f"torch-quickfps not importable: {e}", ""])
            return
        from fastsel.benchmarks.common import first_divergence
        from fastsel.benchmarks.select import _sets_pool
        from fastsel.ops.sets import greedy_sets
        import fastsel
        B, N, d, k = (2, 500, 32, 50) if q else (8, 10000, 1024, 2500)
        rows = [f"## torch-quickfps's grid on the device: {B} x {N:,} x {d:,}, K = {k:,} (8 blobs per set)", "",
                "| implementation | seconds (best of 3) | leading picks equal to float64, worst set | quickfps's best / this |",
                "|---|---|---|---|"]
        res = {}
        for kind in ("blobs", "gauss"):
            x = _sets_pool(B, N, d, kind).to(device)
            ref = greedy_sets(x.double(), k, 0).indices.cpu()

            def agree(p):  # leading picks equal to float64 FPS, the worst set
                return min(first_divergence(p[b].cpu(), ref[b]) for b in range(B))
            # the bucket mode needs a bucketing dimension <= 64 on CUDA (low_d; its README suggests 3 or 8)
            impls = {"torch-quickfps.sample_idx (bucket, low_d 8)":
                     lambda: qf.sample_idx(x, k, start_idx=0, low_d=min(8, d)),
                     "torch-quickfps.sample_idx (bucket, low_d 64)":
                     lambda: qf.sample_idx(x, k, start_idx=0, low_d=min(64, d)),
                     "torch-quickfps.sample_idx_baseline": lambda: qf.sample_idx_baseline(x, k, start_idx=0),
                     "fastsel.greedy_sets": lambda: greedy_sets(x, k, 0).indices,
                     "fastsel.greedy, one set after another": lambda: torch.stack(
                         [fastsel.greedy(x[b], k, 0).indices for b in range(B)])}
            if "quickfps-baseline" in skip:  # 13.5 s a call on the H200 (2026-12-04): measured once is enough
                impls.pop("torch-quickfps.sample_idx_baseline")
            r = {}
            for name, fn in impls.items():
                try:
                    p = fn()
                    ts = []
                    for _ in range(3):
                        sync(device)
                        t0 = time.perf_counter()
                        p = fn()
                        sync(device)
                        ts.append(time.perf_counter() - t0)
                    r[name] = {"seconds": min(ts), "agree_f64": agree(p)}
                except Exception as e:
                    r[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
            qt = min((v["seconds"] for nm, v in r.items() if nm.startswith("torch-quickfps.sample_idx (bucket")
                      and "seconds" in v), default=None)  # the anchor at its best
            for name, v in r.items():
                if "seconds" in v:
                    ratio = f"{qt / v['seconds']:.2f}" if qt else ""
                    rows.append(f"| {name} ({kind}) | {v['seconds']:.4f} | {v['agree_f64']} / {k} | {ratio} |")
                else:
                    rows.append(f"| {name} ({kind}) | failed: {v['error'][:120]} | | |")
            res[kind] = r
        record(out, "quickfps", res, rows + [""])
    def curate():
        from PIL import Image
        import shutil
        folder = os.path.join(work, "photos")
        for d in ("photos", "pick-greedy", "pick-facility"):  # a rerun on a warm machine starts clean: rewritten
            shutil.rmtree(os.path.join(work, d), ignore_errors=True)  # files would not match the old manifests
        count = 96 if q else a.curate_images
        npz = os.path.join(work, "synth-curate.npz")
        synthetic_cifar(npz, count, seed=1)
        arr = np.load(npz)["images"]
        planted = count // 8  # the last eighth are copies of the first eighth: SemDeDup's known answer
        arr[count - planted:] = arr[:planted]
        for i, im in enumerate(arr):  # nested folders, as photo collections come
            sub = os.path.join(folder, f"part{i % 4}")
            os.makedirs(sub, exist_ok=True)
            Image.fromarray(im).save(os.path.join(sub, f"img{i:05d}.png"))
        n = 16 if q else 256
        rows = [f"## curate on the device: `fastsel curate` of a folder of {count:,} PNGs (32x32, 4 subfolders, "
                f"{planted} of them copies of others), DINOv2-small (random weights), n = {n}", "",
                "| run | wall (s) | embedded | embedding img/s | embed (s) | network load (s) | select (s) | rest (s) "
                "| dedup removed | entropy: picked / random |", "|---|---|---|---|---|---|---|---|---|---|"]
        res = {}
        eps = "0.001"
        runs = [("greedy", ["--method", "greedy"], "pick-greedy"),
                (f"facility after --dedup {eps}", ["--method", "facility", "--dedup", eps], "pick-facility")]
        for label, extra, dest in runs:
            txt, secs = cli(["curate", folder, "-n", str(n), "--out", os.path.join(work, dest), "--features",
                             "dinov2-s", "--device", device, "--batch-size", "32" if q else "256", "--json", *extra],
                            log, 120 if q else 240)
            r = json.loads(next(ln for ln in reversed(txt.splitlines()) if ln.startswith("{")))  # stderr is mixed in
            e = r["embedding"]
            rest = r["seconds"] - e["seconds"] - e["load_seconds"] - r["select_seconds"]
            res[label] = {"cli_seconds": secs, **{k: r[k] for k in ("seconds", "select_seconds", "entropy",
                                                                    "entropy_random", "readable", "dedup")},
                          "embedding": {k: e.get(k) for k in ("seconds", "load_seconds", "embedded", "img_per_s")},
                          "entropy_note": r.get("entropy_note")}
            rate = f"{e['img_per_s']:.0f}" if e.get("img_per_s") else "-"
            ent = " / ".join("-inf (copies)" if r[k] is None else f"{r[k]:.1f}" for k in ("entropy", "entropy_random"))
            rows.append(f"| {label} | {secs:.1f} | {e['embedded']} | {rate} | {e['seconds']:.2f} | "
                        f"{e['load_seconds']:.2f} | {r['select_seconds']:.3f} | {rest:.2f} | "
                        f"{(r['dedup'] or {}).get('removed', '-')} | {ent} |")
        if "dinov2-s" in rates:
            rows += ["", f"Stage 2's `fastsel embed` rate for DINOv2-small on this device: "
                     f"{rates['dinov2-s']:.0f} img/s (uint8 arrays in memory; curate's rate also reads and decodes "
                     "each PNG and resizes it on the CPU; neither counts loading the network)."]
        res["planted_copies"] = planted
        record(out, "curate", res, rows + ["", f"SemDeDup's known answer: {planted} planted copies (a removal count "
                                           "above it means random-weight features put distinct images within eps). "
                                           "The wall column is the CLI call (process start and imports "
                                           "included); rest = curate's own time less embedding, network load and "
                                           "selection (SemDeDup's k-means, writing embeddings.npy, coverage, "
                                           "subset links, report PNGs).", ""])

    fns = {"models": models, "embed": embed, "loop": loop_bench, "estimate": estimate, "selectors": selectors,
           "quickfps": quickfps, "curate": curate, "e2e": end_to_end}
    for name in a.order.split(","):  # default: the longest stage (e2e) last, so a time limit cuts it alone
        if name not in skip:
            stage(out, name, fns[name])
    return 0 if not RESULTS["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
