"""The CUDA path (pinned uploads on a copy stream, on-GPU colour conversion, CUDA graphs,
fp16, tile size from free memory) against the CPU path on the same clip."""

import numpy as np
import pytest
import torch

from pyimg.video import load_model, upscale
from pyimg.video.engine import Upscaler

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
@pytest.mark.parametrize("cuda_graphs", [True, False])
def test_cuda_matches_cpu(clip, tmp_path, espcn_weights, decode_planes, pix_fmt, cuda_graphs):
    source, _ = clip("in.mkv", frames=9, size=(64, 36), pix_fmt=pix_fmt, codec="ffv1",
                     audio=False)
    cpu, gpu = tmp_path / "cpu.mkv", tmp_path / "gpu.mkv"
    upscale(source, cpu, str(espcn_weights), device="cpu", progress=False)
    report = upscale(source, gpu, str(espcn_weights), device="cuda", batch=4,
                     cuda_graphs=cuda_graphs, progress=False)
    assert report["frames"] == 9 and set(report["stages"]) == {
        "decode", "upload", "model", "download", "encode"}
    for a, b in zip(decode_planes(cpu), decode_planes(gpu), strict=True):
        for plane_a, plane_b in zip(a, b, strict=True):
            # TF32 or another convolution algorithm may round differently by a step
            assert np.abs(plane_a.astype(int) - plane_b.astype(int)).max() <= 1


def test_fp16_close_to_fp32(clip, tmp_path, espcn_weights, decode_planes):
    source, _ = clip("in.mkv", frames=4, size=(64, 36), codec="ffv1", audio=False)
    full, half = tmp_path / "fp32.mkv", tmp_path / "fp16.mkv"
    upscale(source, full, str(espcn_weights), device="cuda", progress=False)
    upscale(source, half, str(espcn_weights), device="cuda", dtype="fp16", progress=False)
    for a, b in zip(decode_planes(full), decode_planes(half), strict=True):
        assert np.abs(a[0].astype(int) - b[0].astype(int)).max() <= 2


def test_tile_from_free_memory_and_tiled_result(espcn_weights):
    sr = load_model(str(espcn_weights))
    upscaler = Upscaler(sr, device="cuda")
    x = torch.rand(2, 1, 300, 200, device="cuda")
    assert upscaler._auto_tile(x) is None  # small frames fit whole
    upscaler.tile = 64
    with torch.inference_mode():
        tiled = upscaler.infer(x)
        whole = sr.module.cuda()(x)
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=1e-4)
