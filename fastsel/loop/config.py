"""Configuration of the self-consuming loop: UNet presets, run presets, the resolved LoopConfig."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch

from .. import data, features
from ..errors import DataError, FastselError
from ..ops._inputs import check_seed
from ..selectors import SELECTORS, declared, selector_names, takers

# UNet2DModel layouts. "paper": the Appendix D listing (CIFAR-10 / FFHQ: channels 48-48-96-96-144-144,
# 2 layers per block, 16 groups) in the diffusers train_unconditional.py layout, whose attention
# ("Transformer blocks", D.2) sits at the 5th down / 2nd up block: 10.69M parameters as built by
# diffusers 0.42. On single-channel data (MNIST) "paper" is the Appendix D MNIST listing (64-128-256-512,
# 32 groups) with attention at the analogous place, the second-deepest level (3rd down / 2nd up).
# "cNN": the authors' released train_unconditional.py variant, (c, c, 2c, 2c, 4c, 4c) with attention
# at the fifth level (c48: 16.0M parameters, c32: 7.1M, c64: 28.4M). "tiny": smoke runs and tests.
UNETS = {
    "paper": dict(block_out_channels=(48, 48, 96, 96, 144, 144), layers_per_block=2, norm_num_groups=16,
                  down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                  up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4),
    "paper-mnist": dict(block_out_channels=(64, 128, 256, 512), layers_per_block=2, norm_num_groups=32,
                        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
                        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D")),
    "cpu": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2),
    "tiny": dict(block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2),
}
for _c in (32, 48, 64, 128):
    UNETS[f"c{_c}"] = dict(block_out_channels=(_c, _c, 2 * _c, 2 * _c, 4 * _c, 4 * _c), layers_per_block=2,
                           norm_num_groups=16,
                           down_block_types=("DownBlock2D",) * 4 + ("AttnDownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "AttnUpBlock2D") + ("UpBlock2D",) * 4)

# the names a UNet setting may take ("paper-mnist" is "paper" on single-channel data: unet_kwargs picks it)
UNET_CHOICES = tuple(k for k in UNETS if k != "paper-mnist")

# the choice lists of the loop's settings: LoopConfig.validate and the `fastsel loop` flags read these
PARADIGMS = ("replace", "accumulate")
VANILLAS = ("uniform", "equal")              # the none arm under accumulate
OPTIMIZERS = ("adam", "adamw")
LR_SCHEDULES = ("constant", "cosine")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
SAMPLERS = ("ddpm", "ddim")
BETA_SCHEDULES = ("linear", "squaredcos_cap_v2")


def selectors() -> tuple:
    """Names a loop arm may use: the loop's own plus every registered selector (fastsel.select)."""
    return ("none",) + selector_names() + ("all",)


def check_selectors(names, where: str = "selectors") -> tuple:
    """The one rule for a loop's arms (the CLI, a config file and the selection step all ask it): a
    non-empty list of distinct names, each 'none', 'all' or a registered selector."""
    allowed = selectors()
    names = tuple(names)
    bad = [x for x in names if x not in allowed]
    if not names or bad or len(set(names)) != len(names):
        raise DataError(f"{where}: selectors must be distinct names from {', '.join(allowed)}, got {list(names)}")
    return names


@dataclass
class LoopConfig:
    dataset: str
    preset: str = "smoke"
    paradigm: str = "accumulate"
    selectors: tuple = ("none", "greedy")
    vanilla: str = "uniform"          # selector none under accumulate: uniform | equal (the authors' equal share)
    n: int = 256                      # training-set size
    pool_factor: int = 2              # replace + selector: generate pool_factor * n, keep n
    iterations: int = 2
    features: str = "pixels"          # selection / GS / entropy features
    fid_features: str = "pixels"      # FID features ("inception" for the paper's FID)
    seed: int = 0
    unet: str = "tiny"
    epochs: Optional[int] = None      # training length: epochs over the training set ...
    train_steps: Optional[int] = 300  # ... or a fixed number of steps (wins when both are set)
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-6
    optimizer: str = "adam"           # adam | adamw (the diffusers script's optimizer)
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    lr_schedule: str = "constant"     # constant | cosine (500 warm-up steps in the diffusers script)
    warmup_steps: int = 0
    grad_clip: float = 0.0            # max gradient norm (0: no clipping; the diffusers script: 1.0)
    ema: bool = False                 # EMA of the weights (inv_gamma 1, power 3/4, max decay 0.9999)
    mixed_precision: str = "no"       # no | bf16 | fp16 (GPU only; fp16 with a grad scaler)
    sampler: str = "ddim"             # ddpm (1000 steps) | ddim
    beta_schedule: str = "linear"     # noise schedule of training and sampling: linear (DDPM) | squaredcos_cap_v2
    sample_steps: int = 10
    sample_batch: int = 256
    cfg_scale: float = 0.0            # > 0: class-conditional UNet, label dropout, guided sampling
    label_dropout: float = 0.1
    ckpt_every: int = 100             # training checkpoint every this many steps
    device: str = "cpu"
    data_n: Optional[int] = None      # real images drawn from the dataset (default n)
    image_size: Optional[int] = None  # resize the real images to this side (None: native; MNIST padded as needed)
    holdout: int = 256                # held-out real images (never trained on): the reference of gs_norm
    eval_samples: int = 0             # generate at least this many samples per model (measured, not trained on)
    entropy_m: int = 16               # entropy_fixed: the KL estimate on random subsets of this many rows
    extra: dict = field(default_factory=dict)
    # each arm's selector options (fastsel.selectors.Option), {selector: {option: value}}: the values
    # given; an option not given is the selector's default. Options with a config_key (the threshold
    # filter's tau, alpha, decay, order) are written at that key of config.json, where they have always
    # been (saved runs keep their settings and hashes); the others under "selector_options".
    selector_options: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["selectors"] = list(self.selectors)
        d["adam_betas"] = list(self.adam_betas)
        opts = {s: dict(o) for s, o in d.pop("selector_options").items()}
        out = {}
        for k, v in d.items():
            out[k] = v
            if k == "fid_features":  # the flat keys' place in config.json since they were fields
                for key, (sel, o) in flat_options().items():
                    out[key] = opts.get(sel, {}).pop(o.name, o.default)
        rest = {s: dict(sorted(o.items())) for s, o in sorted(opts.items()) if o}
        if rest:
            out["selector_options"] = rest
        return out

    def options_for(self, selector: str) -> dict:
        """The options given for ``selector`` (what the loop's selection step passes to it)."""
        return dict(self.selector_options.get(selector, {}))

    def option(self, name: str):
        """The value of option ``name`` (given, else its declared default) for the first selector
        that declares it."""
        o, sel = declared(name)
        return self.selector_options.get(sel.name, {}).get(name, o.default)

    def set_option(self, name: str, value, arms=None) -> None:
        """Give option ``name`` this value for every selector that declares it (those among ``arms``
        when given; a flat option always: config.json holds it whatever the arms). A new mapping:
        a copy (dataclasses.replace) never shares it."""
        flat = declared(name)[0].config_key is not None
        d = {s: dict(o) for s, o in self.selector_options.items()}
        for s in takers(name):
            if flat or arms is None or s in arms:
                d.setdefault(s, {})[name] = value
        self.selector_options = d

    @classmethod
    def from_json(cls, d: dict, where: str = "config") -> "LoopConfig":
        if not isinstance(d, dict):
            raise DataError(f"{where}: not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} | set(flat_options())
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"{where}: unknown keys {', '.join(unknown)} (written by another fastsel version?)")
        if "dataset" not in d:
            raise DataError(f"{where}: no 'dataset'")
        d = _unflatten(d, where)
        if "selectors" in d:
            if not isinstance(d["selectors"], (list, tuple)):
                raise DataError(f"{where}: 'selectors' must be a list")
            d["selectors"] = tuple(d["selectors"])
        if "adam_betas" in d:
            if not isinstance(d["adam_betas"], (list, tuple)):
                raise DataError(f"{where}: adam_betas must be two numbers in [0, 1), got {d['adam_betas']!r}")
            d["adam_betas"] = tuple(d["adam_betas"])
        cfg = cls(**d)
        cfg.validate(where)
        return cfg

    def validate(self, where: str = "config") -> None:
        """Every setting checked before any work starts; one line naming the first bad one."""
        if not isinstance(self.dataset, str) or not self.dataset:
            raise DataError(f"{where}: dataset must be a name or a path, got {self.dataset!r}")
        if not isinstance(self.preset, str):
            raise DataError(f"{where}: preset must be a string, got {self.preset!r}")
        check_device(self.device, where)
        if not isinstance(self.ema, bool):
            raise DataError(f"{where}: ema must be true or false, got {self.ema!r}")
        if not isinstance(self.extra, dict):
            raise DataError(f"{where}: extra must be an object, got {self.extra!r}")
        choices = {"paradigm": PARADIGMS, "vanilla": VANILLAS, "optimizer": OPTIMIZERS,
                   "lr_schedule": LR_SCHEDULES, "mixed_precision": MIXED_PRECISIONS,
                   "sampler": SAMPLERS, "beta_schedule": BETA_SCHEDULES,
                   "features": features.names(), "fid_features": features.names(), "unet": tuple(UNETS)}
        for k, allowed in choices.items():
            if not isinstance(getattr(self, k), str) or getattr(self, k) not in allowed:
                raise DataError(f"{where}: {k} {getattr(self, k)!r} is not one of {', '.join(allowed)}")
        check_selectors(self.selectors, where)
        if self.image_size is not None and (isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
                                            or self.image_size < 4):
            raise DataError(f"{where}: image_size must be an integer >= 4 or null, got {self.image_size!r}")
        ints = {"n": 2, "pool_factor": 1, "iterations": 1, "batch_size": 1, "sample_batch": 1, "ckpt_every": 1,
                "warmup_steps": 0, "sample_steps": 1, "holdout": 0, "eval_samples": 0, "entropy_m": 2}
        for k, lo in ints.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise DataError(f"{where}: {k} must be an integer >= {lo}, got {v!r}")
        try:  # the one seed rule (an integer in [0, SEED_MAX]); a config's seed is a plain (JSON) integer too
            check_seed(self.seed)
            seed_ok = isinstance(self.seed, int)
        except FastselError:
            seed_ok = False
        if not seed_ok:
            raise DataError(f"{where}: seed must be an integer in [0, 2**32-1], got {self.seed!r}")
        for k in ("epochs", "train_steps", "data_n"):
            v = getattr(self, k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise DataError(f"{where}: {k} must be a positive integer or null, got {v!r}")
        if not (self.epochs or self.train_steps):
            raise DataError(f"{where}: set epochs or train_steps")
        check_selector_options(self.selector_options, where)
        for k in ("lr", "adam_eps"):
            if not (_number(getattr(self, k)) and getattr(self, k) > 0):
                raise DataError(f"{where}: {k} must be a finite number > 0, got {getattr(self, k)!r}")
        for k in ("weight_decay", "grad_clip", "cfg_scale"):
            if not (_number(getattr(self, k)) and getattr(self, k) >= 0):
                raise DataError(f"{where}: {k} must be a finite number >= 0, got {getattr(self, k)!r}")
        if not (_number(self.label_dropout) and 0 <= self.label_dropout < 1):
            raise DataError(f"{where}: label_dropout must be in [0, 1), got {self.label_dropout!r}")
        if len(self.adam_betas) != 2 or not all(_number(b) and 0 <= b < 1 for b in self.adam_betas):
            raise DataError(f"{where}: adam_betas must be two numbers in [0, 1), got {list(self.adam_betas)}")


def flat_options() -> dict:
    """The selector options config.json holds at a key of their own (Option.config_key): key ->
    (selector name, Option), read from the selectors' declarations."""
    return {o.config_key: (s.name, o) for s in SELECTORS.values() for o in s.options if o.config_key}


def _unflatten(d: dict, where: str) -> dict:
    """A saved configuration's keys as LoopConfig fields: the flat option keys (tau, alpha ... as every
    config.json has held them) moved into selector_options."""
    d = dict(d)
    opts = d.get("selector_options", {})
    if not isinstance(opts, dict) or not all(isinstance(v, dict) for v in opts.values()):
        raise DataError(f"{where}: selector_options must be an object of objects ({{selector: {{option: "
                        f"value}}}}), got {opts!r}")
    opts = {s: dict(o) for s, o in opts.items()}
    for key, (sel, o) in flat_options().items():
        if key in d:
            v = d.pop(key)
            if o.name in opts.get(sel, {}) and opts[sel][o.name] != v:
                raise DataError(f"{where}: {key} {v!r} and selector_options {sel} {o.name} "
                                f"{opts[sel][o.name]!r} differ")
            opts.setdefault(sel, {})[o.name] = v
    d["selector_options"] = opts
    return d


def check_selector_options(opts, where: str = "config") -> None:
    """Each selector registered, each option one it declares, each value valid (one line)."""
    if not isinstance(opts, dict):
        raise DataError(f"{where}: selector_options must be an object, got {opts!r}")
    for sel, given in opts.items():
        if sel not in SELECTORS or not isinstance(given, dict):
            raise DataError(f"{where}: selector_options: {sel!r} is not a registered selector with an object of "
                            f"options ({', '.join(s for s in SELECTORS if SELECTORS[s].options)} have options)")
        for name, v in given.items():
            o = SELECTORS[sel].option(name)
            if o is None:
                have = ", ".join(x.name for x in SELECTORS[sel].options) or "none"
                raise DataError(f"{where}: selector_options: {sel} has no option {name!r} (its options: {have})")
            why = o.problem(v)
            if why:
                label = o.config_key or f"selector_options {sel} {name}"
                raise DataError(f"{where}: {label} {why}, got {v!r}")


def _number(v) -> bool:
    """A finite int or float (not a bool, not NaN or Inf)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_device(device, where: str = "config") -> None:
    """The device's form (cpu or cuda, with an optional index K, spelled as ``torch.device`` takes it),
    checked without touching a GPU (--dry-run works anywhere): the one rule of every --device and of
    the loop's config; whether that GPU is there is :func:`device_problem`."""
    if not isinstance(device, str) or not re.fullmatch(r"(cpu|cuda)(:(0|[1-9][0-9]*))?", device):
        raise DataError(f"{where}: device must be cpu or cuda[:K], got {device!r}")


def device_problem(device: str):
    """Why this machine cannot run on ``device`` (None: it can)."""
    if not device.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        return f"device {device}: no CUDA device is visible"
    k = int(device.split(":")[1]) if ":" in device else 0
    if k >= torch.cuda.device_count():
        return f"device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
    return None


# settings that do not change what any iteration computes: the device (a run may resume on another
# GPU, or the CPU), the number of iterations (a run may be extended) and the checkpoint interval.
# Every other setting is fixed for the life of a run: each stage folder records the settings it ran
# with (settings.json) and each metrics record their hash, and a resume that differs is refused.
FREE_SETTINGS = ("device", "iterations", "ckpt_every")


def result_settings(cfg: LoopConfig) -> dict:
    """The settings that shape a run's results (all but FREE_SETTINGS), as plain JSON."""
    d = {k: v for k, v in cfg.to_json().items() if k not in FREE_SETTINGS}
    return json.loads(json.dumps(d))


def config_hash(cfg: LoopConfig) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of result_settings(cfg)."""
    return settings_hash(result_settings(cfg))


def saved_settings(d: dict) -> dict:
    """result_settings of a configuration as saved (a dict), without building a LoopConfig (a report
    reads runs whose extractors or devices this machine may lack): settings added since it was written
    take their defaults, as load_config gives them."""
    full = {}
    for f in dataclasses.fields(LoopConfig):
        if f.default is not dataclasses.MISSING:
            full[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            full[f.name] = f.default_factory()
    full.pop("selector_options")  # written only when it holds an option without a key of its own
    full.update({key: o.default for key, (_, o) in flat_options().items()})
    full.update(d)
    return {k: v for k, v in json.loads(json.dumps(full)).items() if k not in FREE_SETTINGS}


def settings_hash(d: dict) -> str:
    """config_hash of a configuration as saved (config.json, metrics.json's "config"): its settings but
    FREE_SETTINGS, hashed as written, without building a LoopConfig (a report reads runs whose
    extractors or devices this machine may lack)."""
    d = {k: v for k, v in d.items() if k not in FREE_SETTINGS}
    text = json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def load_config(run_dir: str) -> LoopConfig:
    """The configuration saved in a run directory, checked whole (one line naming config.json)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise DataError(f"{run_dir}: no config.json -- not a fastsel loop run directory")
    try:
        with open(path) as f:
            d = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({str(e).splitlines()[0]}; truncated?)") from None
    return LoopConfig.from_json(d, path)


class FromDataset(NamedTuple):
    """A preset setting that the dataset's registration gives (``fastsel.data.register``: its
    classifier, paper_n, paper_epochs), and the value when it says nothing or the dataset is a folder
    or an array file."""
    attr: str
    default: object

    def value(self, src):
        return (getattr(src, self.attr) if src is not None else None) or self.default


_ARMS = ("none", "greedy", "threshold")
_CLASSIFIER = FromDataset("classifier", "pixels")  # LeNet features on the digit datasets

# The run presets, before command-line overrides (``fastsel loop --preset``; the first is its default).
# Each names its training length once, train_steps or epochs: preset() clears the other.
PRESETS = {
    # the CPU main job, in the memorization regime (docs/reproduction.md "Recipe"): 16 real digits at
    # 16x16, the 0.16M UNet trained 1,250 steps of batch 16 at a constant lr 2e-3 with EMA (1,250
    # epochs per image: the model copies part of its data), 50-step DDIM, 256 measured samples;
    # LeNet features (selection, GS, entropy, FID), copies on pixels -- README "main job"
    "cpu": dict(unet="cpu", image_size=16, n=16, iterations=2, train_steps=1250, batch_size=16, lr=2e-3,
                lr_schedule="constant", warmup_steps=0, ema=True, sampler="ddim", sample_steps=50, eval_samples=256,
                features=_CLASSIFIER, fid_features=_CLASSIFIER, selectors=_ARMS, pool_factor=2, ckpt_every=200),
    # the previous main job: 512 digits, cosine lr, 800 steps of 32 -- the models generalize (no copies)
    "cpu-n512": dict(unet="cpu", image_size=16, n=512, iterations=2, train_steps=800, batch_size=32, lr=2e-3,
                     lr_schedule="cosine", warmup_steps=50, ema=True, sampler="ddim", sample_steps=50,
                     features=_CLASSIFIER, fid_features=_CLASSIFIER, selectors=_ARMS, pool_factor=2, ckpt_every=200),
    # minutes on 2 cores: 64 digits, 150 steps per model (the loop end to end, not a result)
    "smoke": dict(unet="tiny", n=64, iterations=2, train_steps=150, batch_size=32, lr=1e-3, sampler="ddim",
                  sample_steps=10, features="pixels", fid_features="pixels", selectors=_ARMS, pool_factor=2,
                  ckpt_every=100),
    # Appendix D + the diffusers train_unconditional.py defaults (D.3: "other hyperparameters exactly
    # the default values"): AdamW (0.95, 0.999), eps 1e-8, cosine schedule with 500 warm-up steps,
    # gradient clipping at 1.0, fp16 mixed precision; EMA off (the current script's default; --ema
    # turns on the older scripts' inv_gamma 1 / power 3/4 / 0.9999 EMA). DINOv2-small selection
    # features (the authors' released code), Inception FID; n and epochs from the dataset's registration.
    "paper": dict(unet="paper", n=FromDataset("paper_n", 8192), iterations=8, epochs=FromDataset("paper_epochs", 500),
                  batch_size=128, lr=1e-4, weight_decay=1e-6, optimizer="adamw", adam_betas=(0.95, 0.999),
                  adam_eps=1e-8, lr_schedule="cosine", warmup_steps=500, grad_clip=1.0, ema=False,
                  mixed_precision="fp16", sampler="ddpm", sample_steps=1000, features="dinov2-s",
                  fid_features="inception", selectors=_ARMS, pool_factor=2, ckpt_every=2000, device="cuda"),
}


def preset(name: str, dataset: str) -> dict:
    """Settings of a preset, before command-line overrides.

    Args:
        name: ``smoke``, ``cpu``, ``cpu-n512``, ``paper`` ... (``fastsel loop --help`` lists them).
        dataset: the dataset name (its registration gives the paper preset's n and epochs and the
            CPU presets' classifier).

    Returns:
        A dict of :class:`LoopConfig` fields.

    Raises:
        fastsel.errors.FastselError: an unknown preset name.
    """
    if name not in PRESETS:
        raise FastselError(f"unknown preset {name!r}: {', '.join(PRESETS)}")
    table = PRESETS[name]
    # what the dataset's registration says (None: a folder or an array file)
    src = data.source(dataset.lower()) if any(isinstance(v, FromDataset) for v in table.values()) else None
    out = {"preset": name, "train_steps": None, "epochs": None}  # the training length: the one the preset names
    out.update({k: v.value(src) if isinstance(v, FromDataset) else v for k, v in table.items()})
    return out


def unet_kwargs(name: str, channels: int) -> dict:
    if name == "paper" and channels == 1:
        name = "paper-mnist"
    if name not in UNETS:
        raise FastselError(f"unknown UNet {name!r}: choose one of {', '.join(sorted(UNETS))}")
    return dict(UNETS[name])


def needs_padding(side: int, unet: str, channels: int) -> bool:
    """The one padding rule: a side the UNet's levels cannot halve down to a whole number (28 with 4+
    levels: 28 / 2**3 is not whole) is padded by 2 on each edge (MNIST's 28x28 to 32x32)."""
    levels = len(unet_kwargs(unet, channels)["block_out_channels"])
    return side == 28 and 28 % 2 ** (levels - 1) != 0

