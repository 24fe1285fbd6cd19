"""The loop's DDPM sampler: its own step with the noise drawn ahead gives diffusers' numbers, bit for
bit, and samples stay independent of the batch size."""
import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from fastsel.loop import sample as SM  # noqa: E402
from fastsel.loop import train as MD  # noqa: E402
from fastsel.loop.config import LoopConfig  # noqa: E402


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 16, 16), (3, 5, 5)])
def test_chunked_draws_are_the_per_step_draws(shape):
    gens = [SM.image_generator(7, 3, i) for i in range(3)]
    twins = [SM.image_generator(7, 3, i) for i in range(3)]
    ahead = SM._NoiseAhead(gens, shape, torch.device("cpu"), chunk=5)
    for _ in range(12):  # crosses chunk boundaries
        want = torch.stack([torch.randn(shape, generator=g) for g in twins])
        assert torch.equal(ahead.next(), want)


@pytest.mark.parametrize("clip", [True, False])
def test_ddpm_step_is_diffusers_step(clip, rng):
    from diffusers import DDPMScheduler
    sch = DDPMScheduler(num_train_timesteps=1000, clip_sample=clip)
    sch.set_timesteps(20)
    x = torch.from_numpy(rng.standard_normal((4, 3, 8, 8)).astype(np.float32)) * 2
    for t in [int(v) for v in sch.timesteps[::6]] + [0]:
        eps = torch.from_numpy(rng.standard_normal((4, 3, 8, 8)).astype(np.float32))
        gens = [SM.image_generator(1, 2, i) for i in range(4)]
        z = torch.stack([torch.randn((3, 8, 8), generator=SM.image_generator(1, 2, i)) for i in range(4)])
        want = sch.step(eps, t, x, generator=gens).prev_sample
        got = SM.ddpm_step(sch, eps, t, x, z if t > 0 else None)
        assert torch.equal(got, want), t


def _cfg(**kw):
    return LoopConfig(dataset="t", unet="tiny", sampler="ddpm", sample_steps=6, device="cpu", seed=3, **kw)


def test_fast_sampler_equals_diffusers_step_and_ignores_batch_size(tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = _cfg(sample_batch=5)
    model = MD.build_unet(cfg, 8, 3).eval()
    assert SM._fast_ddpm(SM._sample_scheduler(cfg))  # the loop's DDPM takes the fast path
    fast = SM.sample(cfg, model, 7, 8, 3, 1, str(tmp_path / "a"))
    monkeypatch.setattr(SM, "FAST_DDPM", False)
    slow = SM.sample(cfg, model, 7, 8, 3, 1, str(tmp_path / "b"))
    assert np.array_equal(fast, slow)
    monkeypatch.setattr(SM, "FAST_DDPM", True)
    other = SM.sample(_cfg(sample_batch=3), model, 7, 8, 3, 1, str(tmp_path / "c"))
    assert np.array_equal(fast, other)
    assert len({f.tobytes() for f in fast}) == 7  # distinct images: each its own noise
