"""The GPU device check's script (bench/gpu_check.sh -> bench/gpu_pipeline.py) stays runnable: a GPU is
lent only to some sessions, so a stage broken by a change elsewhere would otherwise be found only
after minutes of scarce GPU time. Its --quick mode runs the same stages, tiny, on this CPU."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_gpu_check_script_parses():
    subprocess.run(["bash", "-n", os.path.join(ROOT, "bench", "gpu_check.sh")], check=True)


def test_the_gpu_pipeline_stages_run_on_the_cpu_in_quick_mode(tmp_path):
    """The cheap stages end to end (the model files, every selector, the anchors' grid, curate of a
    PNG folder): no stage errors, each writes its table, and curate's numbers have known answers --
    every image embedded once, and SemDeDup removing at least as many rows as there are planted copies."""
    pytest.importorskip("transformers")
    pytest.importorskip("PIL")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu_pipeline.py"), str(out), "--quick",
                        "--order", "models,selectors,quickfps,curate"], capture_output=True, text=True, timeout=300,
                       cwd=ROOT)
    res = json.loads((out / "pipeline.json").read_text())
    assert r.returncode == 0 and res["errors"] == {}, (res["errors"], r.stdout[-2000:], r.stderr[-2000:])
    assert {"models", "selectors", "quickfps", "curate"} <= set(res["stages"])
    from fastsel.selectors import selector_names
    assert all("seconds" in res["stages"]["selectors"][m] for m in selector_names())
    cur = res["stages"]["curate"]
    runs = [v for k, v in cur.items() if isinstance(v, dict)]
    assert len(runs) == 2 and all(v["readable"] == 96 and v["embedding"]["embedded"] == 96 for v in runs)
    (dedup,) = [v["dedup"] for v in runs if v["dedup"]]
    assert dedup["removed"] >= cur["planted_copies"] == 12
    # a rerun in the same work folder (a warm GPU machine) starts the stage clean
    r2 = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gpu_pipeline.py"), str(tmp_path / "out2"),
                         "--quick", "--order", "models,curate"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r2.returncode == 0 and json.loads((tmp_path / "out2" / "pipeline.json").read_text())["errors"] == {}, \
        (r2.stdout[-2000:], r2.stderr[-2000:])
    md = (out / "pipeline.md").read_text()
    assert "## curate on the device" in md and "## every registered selector" in md
