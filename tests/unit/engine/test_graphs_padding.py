"""The CUDA-graph path's padding, run on the CPU without a graph (``capture=False``): a batch
padded to its bucket gives each real row what the plain UNet and VAE give it."""

from __future__ import annotations

import pytest
import torch

from streamgen.engine.engine import DiffusionEngine
from streamgen.engine.graphs import BucketGraphs, eager_noise
from streamgen.errors import ConfigError
from streamgen.settings import EngineSettings

# fp32 on the CPU: another batch size changes only the summation order.
ATOL = 1e-4


def _inputs(engine: DiffusionEngine, rows: int) -> tuple[torch.Tensor, ...]:
    parts = engine.parts("tiny")
    cond = parts.family.encode(
        parts,
        [f"prompt {i}" for i in range(rows)],
        ["" if i % 2 else "blurry" for i in range(rows)],
        width=64,
        height=64,
        device=engine.device,
    )
    generator = torch.Generator().manual_seed(rows)
    latents = torch.randn(rows, 4, 8, 8, generator=generator)
    guidance = torch.linspace(1.0, 9.0, rows)
    return latents, torch.tensor(500), cond, guidance  # type: ignore[return-value]


@pytest.mark.parametrize("rows", [1, 3, 4])
def test_padded_noise_prediction_equals_the_plain_one(engine: DiffusionEngine, rows: int) -> None:
    graphs = BucketGraphs(engine.parts("tiny"), engine.device, capture=False)
    predict = graphs.noise_predictor((1, 2, 4))
    latents, t, cond, guidance = _inputs(engine, rows)
    with torch.no_grad():
        padded = predict(latents, t, cond, guidance)  # type: ignore[arg-type]
        plain = eager_noise(engine.parts("tiny"))(latents, t, cond, guidance)  # type: ignore[arg-type]
    assert padded.shape == plain.shape == latents.shape
    torch.testing.assert_close(padded, plain, atol=ATOL, rtol=0)


def test_a_new_batch_reloads_its_conditioning_and_reuses_the_bucket(
    engine: DiffusionEngine,
) -> None:
    graphs = BucketGraphs(engine.parts("tiny"), engine.device, capture=False)
    predict = graphs.noise_predictor((1, 2, 4))
    parts = engine.parts("tiny")
    with torch.no_grad():
        for rows in (3, 4, 3):  # same bucket, new conditioning each time
            latents, t, cond, guidance = _inputs(engine, rows)
            got = predict(latents, t, cond, guidance)  # type: ignore[arg-type]
            want = eager_noise(parts)(latents, t, cond, guidance)  # type: ignore[arg-type]
            torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    assert graphs.count == 1


def test_what_is_captured_can_be_given(engine: DiffusionEngine) -> None:
    """engine.aot_compile hands its packages in: the padded call runs them, not the UNet."""
    parts = engine.parts("tiny")
    calls: list[int] = []
    plain = eager_noise(parts)

    def predict(*args: torch.Tensor) -> torch.Tensor:
        calls.append(args[0].shape[0])
        return plain(*args)  # type: ignore[arg-type]

    def decode(latents: torch.Tensor) -> torch.Tensor:
        calls.append(-latents.shape[0])
        return latents[:, :3] * 2

    graphs = BucketGraphs(parts, engine.device, capture=False, predict=predict, decode=decode)
    latents, t, cond, guidance = _inputs(engine, 3)
    with torch.no_grad():
        got = graphs.noise_predictor((1, 2, 4))(latents, t, cond, guidance)  # type: ignore[arg-type]
        torch.testing.assert_close(got, plain(latents, t, cond, guidance), atol=ATOL, rtol=0)  # type: ignore[arg-type]
        images = graphs.decoder((1, 2, 4))(latents)
    torch.testing.assert_close(images, latents[:, :3] * 2)
    assert calls == [4, -4]  # each ran once, on the bucket's 4 rows (3 real, 1 filler)


def test_padded_decode_equals_the_plain_one(engine: DiffusionEngine) -> None:
    parts = engine.parts("tiny")
    decode = BucketGraphs(parts, engine.device, capture=False).decoder((1, 2, 4))
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(
            decode(latents), parts.vae.decode(latents, return_dict=False)[0], atol=ATOL, rtol=0
        )


def test_cuda_graphs_on_the_cpu_are_a_config_error(tiny_dir: object) -> None:
    settings = EngineSettings(models={"tiny": str(tiny_dir)}, device="cpu", cuda_graphs=True)
    with pytest.raises(ConfigError, match=r"engine\.cuda_graphs"):
        DiffusionEngine(settings)
