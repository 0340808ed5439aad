"""Sample values <-> colour signals, against the standards' numbers and MATLAB's rgb2ycbcr."""

import pytest
import torch

from pyimg.video import color
from pyimg.video.layout import Layout, layout_of_format, nearest_layout
from pyimg.video.planes import ColourPath


def test_luma_model_convention_is_matlab_rgb2ycbcr():
    rgb = torch.rand(2, 3, 7, 5, dtype=torch.float64)
    luma, _ = color.rgb_to_ycc(rgb, "bt601")
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    matlab = 16 + 65.481 * r + 128.553 * g + 24.966 * b
    torch.testing.assert_close(color.luma_to_model(luma) * 255, matlab)
    torch.testing.assert_close(color.model_to_luma(color.luma_to_model(luma)), luma)


@pytest.mark.parametrize("bits", [8, 10])
def test_limited_range_plane_feeds_the_model_as_is(bits):
    """An 8-bit limited-range Y plane / 255 is the model's input (10-bit: / 1020)."""
    layout = Layout("yuv", bits, (1, 1), full_range=False)
    samples = torch.randint(0, 1 << bits, (1, 1, 6, 6)).double()
    model_in = color.luma_to_model(color.decode_luma(samples, layout))
    torch.testing.assert_close(model_in, samples / (255 * (1 << (bits - 8))))


@pytest.mark.parametrize(("full", "bits", "white", "chroma_top"),
                         [(False, 8, 235, 240), (False, 10, 940, 960), (True, 8, 255, 255),
                          (True, 10, 1023, 1023)])
def test_range_end_points(full, bits, white, chroma_top):
    layout = Layout("yuv", bits, full_range=full)
    assert color.encode_luma(torch.tensor(1.0), layout).item() == pytest.approx(white)
    assert color.encode_chroma(torch.tensor(0.5), layout).item() == pytest.approx(
        chroma_top, abs=0.5)
    values = torch.arange(0, 1 << bits, dtype=torch.float64)
    torch.testing.assert_close(color.encode_luma(color.decode_luma(values, layout), layout),
                               values)
    torch.testing.assert_close(color.encode_chroma(color.decode_chroma(values, layout), layout),
                               values)


@pytest.mark.parametrize("matrix", ["bt601", "bt709", "bt2020"])
def test_rgb_ycc_round_trip_and_gray_axis(matrix):
    rgb = torch.rand(1, 3, 4, 9, dtype=torch.float64)
    luma, chroma = color.rgb_to_ycc(rgb, matrix)
    torch.testing.assert_close(color.ycc_to_rgb(luma, chroma, matrix), rgb)
    gray = torch.full((1, 3, 2, 2), 0.3, dtype=torch.float64)
    luma, chroma = color.rgb_to_ycc(gray, matrix)
    torch.testing.assert_close(luma, gray[:, :1])
    assert chroma.abs().max() < 1e-12


def test_bt709_values():
    """Pure red in BT.709 limited range: Y 63, Cb 102, Cr 240 (8-bit, rounded)."""
    luma, chroma = color.rgb_to_ycc(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1), "bt709")
    layout = Layout("yuv", 8, matrix="bt709", full_range=False)
    assert round(color.encode_luma(luma, layout).item()) == 63
    assert [round(v) for v in color.encode_chroma(chroma, layout).flatten().tolist()] == [102,
                                                                                          240]


def test_layouts_of_ffmpeg_formats():
    assert layout_of_format("yuv420p10le", 1, 1) == Layout("yuv", 10, (1, 1), False, False,
                                                           "bt709")
    assert layout_of_format("yuvj422p").full_range
    assert layout_of_format("nv12") is None
    assert nearest_layout("nv12").av_format() == "yuv420p"
    assert nearest_layout("p010le").av_format() == "yuv420p10le"
    assert nearest_layout("rgb48be").av_format() == "rgb48le"
    assert nearest_layout("pal8").av_format() == "rgb24"
    for layout in [Layout("rgb", 16, alpha=True), Layout("gray", 12), Layout("yuv", 8, (1, 0))]:
        assert layout_of_format(layout.av_format()) == layout


def _planes(layout: Layout, height: int, width: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    dtype = torch.uint8 if layout.bits == 8 else torch.int32
    planes = []
    for shape in layout.plane_shapes(height, width):
        values = torch.randint(16 << (layout.bits - 8), 235 << (layout.bits - 8),
                               (1, *shape), generator=g, dtype=dtype)
        planes.append(values if layout.bits == 8 else values.to(torch.uint16))
    return planes


@pytest.mark.parametrize("layout", [Layout("yuv", 8, (1, 1)), Layout("yuv", 10, (1, 0)),
                                    Layout("rgb"), Layout("rgb", 16, alpha=True),
                                    Layout("gray"), Layout("yuv", 8, (0, 0), alpha=True)],
                         ids=lambda layout: layout.av_format())
def test_y_path_without_a_model_returns_the_input(layout):
    """Luma in, luma out, chroma and alpha carried: an identity 'model' gives the planes back
    (RGB within one step: it goes through Y'CbCr)."""
    planes = _planes(layout, 6, 10)
    path = ColourPath(layout, layout, "y")
    values, kept = path.to_model(planes)
    out = path.from_model(values, kept)
    tolerance = 0 if layout.family != "rgb" else 1
    for before, after in zip(planes, out, strict=True):
        assert before.shape == after.shape and before.dtype == after.dtype
        assert (before.int() - after.int()).abs().max() <= tolerance


def test_rgb_model_on_yuv_444_round_trips_within_a_step():
    """In-gamut Y'CbCr (made from RGB) -> R'G'B' -> Y'CbCr: within one step."""
    layout = Layout("yuv", 8, (0, 0), matrix="bt709")
    rgb = torch.rand(1, 3, 5, 7)
    planes = ColourPath(Layout("rgb"), layout, "rgb").from_model(rgb, None)
    path = ColourPath(layout, layout, "rgb")
    values, kept = path.to_model(planes)
    assert values.shape == (1, 3, 5, 7)
    assert (values - rgb).abs().max() < 2 / 219
    for before, after in zip(planes, path.from_model(values, kept), strict=True):
        assert (before.int() - after.int()).abs().max() <= 1


@pytest.mark.parametrize("full_range", [False, True])
def test_direct_yuv_path_against_the_formulas(full_range):
    """Y'CbCr in and out with the same layout: model input is MATLAB's Y / 255, output luma
    the inverse, chroma bicubic x2 of the chroma samples, clamped to the legal range."""
    import torch.nn.functional as F

    layout = Layout("yuv", 8, (1, 1), full_range=full_range)
    planes = _planes(layout, 6, 8, seed=3)
    path = ColourPath(layout, layout, "y")
    assert path.direct
    values, kept = path.to_model(planes)
    y = planes[0].double()
    want = (16 + 219 * y / 255) / 255 if full_range else y / 255
    torch.testing.assert_close(values[:, 0].double(), want, atol=1e-6, rtol=0)
    model_out = torch.rand(1, 1, 12, 16)
    luma, cb, cr = path.from_model(model_out, kept)
    if full_range:
        want_luma = ((model_out * 255 - 16) / 219 * 255).round().clamp(0, 255)
    else:
        want_luma = (model_out * 255).round()
    assert (luma.int() - want_luma[:, 0].int()).abs().max() <= 1
    chroma = torch.stack([p.float() for p in planes[1:3]], 1)
    up = F.interpolate(chroma, scale_factor=2, mode="bicubic", align_corners=False)
    low, high = (0, 255) if full_range else (16, 240)
    want_chroma = up.clamp(low, high).round()
    assert (torch.stack([cb, cr], 1).int() - want_chroma.int()).abs().max() <= 1
