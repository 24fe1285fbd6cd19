"""`fastsel loop --logger tensorboard`: event files under the run folder that TensorBoard reads back."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("diffusers")

from fastsel.cli.main import cli  # noqa: E402


def test_tensorboard_event_files_hold_losses_metrics_and_samples(tmp_path, rng):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    np.savez(tmp_path / "tiny.npz", images=rng.integers(0, 256, (40, 8, 8, 1)).astype(np.uint8),
             labels=rng.integers(0, 3, 40))
    run = tmp_path / "run"
    r = CliRunner().invoke(cli, ["loop", str(tmp_path / "tiny.npz"), "--preset", "smoke", "-n", "16", "--train-steps", "6",
                                 "--batch-size", "8", "--sample-steps", "2", "--sample-batch", "8", "--iterations", "2",
                                 "--selector", "none,greedy", "--run-dir", str(run), "--logger", "tensorboard"])
    assert r.exit_code == 0, r.output
    tb = run / "tensorboard"
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tb))
    ea = EventAccumulator(str(tb), size_guidance={"scalars": 0, "images": 0})
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert "train/shared/it0/loss" in tags and "train/accumulate-greedy/it1/loss" in tags
    loss = ea.Scalars("train/shared/it0/loss")
    assert [e.step for e in loss] == list(range(1, 7)) and all(np.isfinite(e.value) for e in loss)
    gs = ea.Scalars("metrics/gs/accumulate-greedy")
    assert [e.step for e in gs] == [0, 1]
    import json
    recs = json.load(open(run / "metrics.json"))["iterations"]
    want = [x["gs"] for x in recs if x["arm"] == "accumulate-greedy"]
    assert [e.value for e in gs] == pytest.approx(want, rel=1e-6)  # the logged values are the run's
    assert "samples/accumulate-none" in ea.Tags()["images"]
    # resume with another logger setting is allowed (logging is not the run's configuration)
    r = CliRunner().invoke(cli, ["loop", "--resume", str(run), "--logger", "none"])
    assert r.exit_code == 0, r.output
