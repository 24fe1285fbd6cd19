"""One source for each of the loop's rules: the choice lists, the preset table and the training
length live in fastsel/loop/config.py; `fastsel loop` and LoopConfig.validate read them there, and
the sweeps run from fastsel/loop/sweep.py."""
import dataclasses

import click
import pytest

from fastsel.cli.loop import loop
from fastsel.errors import DataError, FastselError
from fastsel.loop import config as C
from fastsel.loop import sweep
from fastsel.loop.logger import LOGGERS

# flag -> (the config's list, the LoopConfig field validate checks, or None)
CHOICES = {
    "--preset": (tuple(C.PRESETS), None), "--paradigm": (C.PARADIGMS, "paradigm"), "--vanilla": (C.VANILLAS, "vanilla"),
    "--optimizer": (C.OPTIMIZERS, "optimizer"), "--lr-schedule": (C.LR_SCHEDULES, "lr_schedule"),
    "--mixed-precision": (C.MIXED_PRECISIONS, "mixed_precision"), "--sampler": (C.SAMPLERS, "sampler"),
    "--beta-schedule": (C.BETA_SCHEDULES, "beta_schedule"), "--unet": (C.UNET_CHOICES, "unet"),
    "--logger": (LOGGERS, None),
}


def _choices(flag):
    p = next(p for p in loop.params if flag in p.opts)
    assert isinstance(p.type, click.Choice), flag
    return tuple(p.type.choices)


@pytest.mark.parametrize("flag", CHOICES)
def test_the_cli_and_validate_read_one_choice_list(flag):
    allowed, field = CHOICES[flag]
    assert _choices(flag) == tuple(allowed)
    if field is None:
        return
    cfg = C.LoopConfig(dataset="mnist", **C.preset("smoke", "mnist"))
    for v in allowed:
        dataclasses.replace(cfg, **{field: v}).validate()
    with pytest.raises(DataError, match=f"{field} 'bogus' is not one of"):
        dataclasses.replace(cfg, **{field: "bogus"}).validate()


def test_unet_choices_are_the_layouts_a_user_names():
    assert C.UNET_CHOICES == ("paper", "cpu", "tiny", "c32", "c48", "c64", "c128")
    assert set(C.UNET_CHOICES) < set(C.UNETS) and "paper-mnist" not in C.UNET_CHOICES


def test_the_preset_table_is_data_and_names_one_training_length():
    assert isinstance(C.PRESETS, dict) and list(C.PRESETS) == ["cpu", "cpu-n512", "smoke", "paper"]
    fields = {f.name for f in dataclasses.fields(C.LoopConfig)}
    for name, table in C.PRESETS.items():
        assert set(table) <= fields, name
        assert ("train_steps" in table) != ("epochs" in table), name  # exactly one length per preset
        p = C.preset(name, "mnist")
        assert p["preset"] == name and (p["train_steps"] is None) != (p["epochs"] is None)
        C.LoopConfig(dataset="mnist", **p).validate()
    with pytest.raises(FastselError, match="unknown preset 'bogus': cpu, cpu-n512, smoke, paper"):
        C.preset("bogus", "mnist")


def test_a_preset_reads_the_dataset_registration_where_the_table_says():
    assert C.preset("cpu", "mnist")["features"] == "lenet" and C.preset("cpu", "a/folder")["features"] == "pixels"
    assert C.preset("paper", "mnist")["n"] == 12000 and C.preset("paper", "a/folder")["n"] == 8192
    assert C.preset("smoke", "mnist")["features"] == "pixels"


def test_a_sweep_plan_names_what_varies_seed_major():
    cfg = C.LoopConfig(dataset="mnist", **C.preset("smoke", "mnist"))
    subs = sweep.plan(cfg, [16, 32], [0.9], [1, 2])
    assert [n for n, _ in subs] == ["n16-seed1", "n32-seed1", "n16-seed2", "n32-seed2"]
    assert [(c.n, c.seed, c.option("alpha")) for _, c in subs] == [(16, 1, 0.9), (32, 1, 0.9), (16, 2, 0.9), (32, 2, 0.9)]
    assert [n for n, _ in sweep.plan(cfg, [16], [0.8, 0.9])] == ["alpha0.8", "alpha0.9"]


def test_a_sweep_folder_holds_one_sweep(tmp_path):
    cfg = C.LoopConfig(dataset="mnist", **C.preset("smoke", "mnist"))
    d = str(tmp_path / "sw")
    subs = sweep.plan(cfg, [16, 32], [0.9])
    sweep.start(d, subs)
    sweep.start(d, subs)  # the same sweep again: resumable
    assert sweep.is_sweep(d) and [(n, c.to_json()) for n, c in sweep.load(d)] == [(n, c.to_json()) for n, c in subs]
    with pytest.raises(DataError, match="holds another sweep"):
        sweep.start(d, sweep.plan(cfg, [16, 64], [0.9]))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds files the loop did not write"):
        sweep.start(str(tmp_path / "mine"), subs)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "sweep.json").write_text("{}")
    with pytest.raises(DataError, match="not a fastsel sweep"):
        sweep.load(str(tmp_path / "bad"))
