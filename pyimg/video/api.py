"""``upscale(input, output, model)``: the Python API behind ``pyimg upscale``.

The input picks the source (a video file, an image, a folder of images, or ``-``: raw frames
on stdin) and the output the sink (a video file, an image or folder, or ``-``: raw frames on
stdout); the pipeline runs between them and the report comes back as a dict. Under
``torchrun`` with more than one process a video is split between them (``distributed``).
"""

import os
import sys
import time
from pathlib import Path

import torch

from pyimg.atomic import atomic_output
from pyimg.video import image_io, report
from pyimg.video.engine import Upscaler
from pyimg.video.model_spec import SRModel, load_model
from pyimg.video.pipeline import Pipeline
from pyimg.video.raw_io import RawReader, RawWriter, parse_size, raw_info, raw_layout
from pyimg.video.stats import StageTimes
from pyimg.video.video_reader import VideoReader
from pyimg.video.video_writer import EncodeOptions, VideoWriter, choose_codec, choose_layout

PIPE = "-"


def parse_frames(text: str | None) -> tuple[int, int | None]:
    """'START:STOP' (either side may be empty) -> (start, stop or None)."""
    if not text:
        return 0, None
    try:
        start, _, stop = text.partition(":")
        first, last = int(start or 0), (int(stop) if stop else None)
    except ValueError:
        raise ValueError(f"--frames {text!r}: expected START:STOP frame numbers, like 0:240") \
            from None
    if first < 0 or (last is not None and last <= first):
        raise ValueError(f"--frames {text!r}: needs 0 <= START < STOP")
    return first, last


def upscale(input: str | os.PathLike, output: str | os.PathLike, model: str | SRModel = "espcn-x2",
            *, weights: str | None = None, scale: int | None = None, channels: str | None = None,
            model_kwargs: dict | None = None, device: str | None = None, dtype: str = "fp32",
            backend: str | None = None, compile: bool = False, batch: int | None = None,
            tile: int | None = None, overlap: int | None = None, cuda_graphs: bool = True,
            optimize: bool = True, codec: str | None = None, crf: int | None = None,
            bitrate: str | None = None, preset: str | None = None, pix_fmt: str | None = None,
            frames: str | None = None, size: str | None = None, fps: float | None = None,
            progress: bool = True, copy_streams: bool = True, on_frame=None, stdin=None,
            stdout=None) -> dict:
    """Upscale ``input`` into ``output`` with ``model`` (a spec for ``load_model`` or an
    ``SRModel``); returns the report (``pyimg.video.report``). ``on_frame(picture)`` sees
    every output picture, in order, before it is written."""
    input, output = str(input), str(output)
    sr = model if isinstance(model, SRModel) else load_model(
        model, weights=weights, scale=scale, channels=channels, kwargs=model_kwargs)
    if scale is not None and scale != sr.scale:
        raise ValueError(f"model {sr.name} upscales by {sr.scale}, not {scale} (--scale)")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and device in (None, "auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # one GPU per rank
    times = StageTimes()
    upscaler = Upscaler(sr, device=device, dtype=dtype, backend=backend, compile=compile,
                        tile=tile, overlap=overlap, cuda_graphs=cuda_graphs, optimize=optimize,
                        times=times)
    if batch is not None and batch < 1:
        raise ValueError(f"--batch must be positive, got {batch}")
    batch = batch or (4 if upscaler.cuda else 1)
    encode = EncodeOptions(codec, crf, bitrate, preset, pix_fmt)
    first, stop = parse_frames(frames)
    job = _Job(upscaler, batch, progress, on_frame)
    if world > 1:
        from pyimg.video import distributed

        if PIPE in (input, output) or Path(input).is_dir() or image_io.is_image_path(input):
            raise ValueError("more than one process (torchrun) splits a video file into a "
                             "video file; images and pipes run in one process")
        return distributed.upscale(job, input, output, encode, first, stop, copy_streams)
    if input == PIPE:
        width, height = parse_size(size) if size else (None, None)
        if width is None:
            raise ValueError("raw frames on stdin need --size WIDTHxHEIGHT")
        layout = raw_layout(pix_fmt)
        source = stdin if stdin is not None else sys.stdin.buffer
        reader = RawReader(source, width, height, layout)
        info = raw_info(width, height, layout, fps)
        if output == PIPE:
            result = job.to_pipe(reader, info, layout, stdout, "<stdin>")
        else:
            encode = EncodeOptions(codec, crf, bitrate, preset)  # --pix-fmt was the input's
            result = job.to_video(reader, info, output, encode, copied=(), time_offset=0.0)
        report.add_stream_verdict(result, fps)
        return result
    if Path(input).is_dir():
        return job.images(_folder_images(input, output), input, output)
    if image_io.is_image_path(input):
        destination = Path(output) / Path(input).name if Path(output).is_dir() else output
        return job.images([(Path(input), Path(destination))], input, str(destination))
    reader = VideoReader(input, first, stop, copy_streams=copy_streams and output != PIPE)
    try:
        if output == PIPE:
            layout = raw_layout(pix_fmt) if pix_fmt else reader.info.layout
            return job.to_pipe(reader, reader.info, layout, stdout, input)
        return job.to_video(reader, reader.info, output, encode, reader.copied,
                            reader.time_offset())
    finally:
        reader.close()


def _folder_images(folder: str, output: str) -> list[tuple[Path, Path]]:
    sources = sorted(p for p in Path(folder).iterdir() if p.is_file() and image_io.is_image_path(p))
    if not sources:
        raise ValueError(f"{folder}: holds no images ({', '.join(image_io.FORMAT_OF_SUFFIX)})")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{output}: a folder of images needs an output folder, not a file")
    out.mkdir(parents=True, exist_ok=True)
    return [(p, out / p.name) for p in sources]


class _ImageSink:
    def write(self, picture) -> None:
        image_io.write_image(picture.extra["destination"], picture)

    def copy(self, packet) -> None:
        pass


def _progress(total: int | None, label: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, unit="frame", desc=label, disable=not enabled,
                file=sys.stderr, dynamic_ncols=True, smoothing=0.1)


class _Job:
    """One run's upscaler, batch size and progress switch, and the sinks it can feed."""

    def __init__(self, upscaler: Upscaler, batch: int, progress: bool, on_frame=None):
        self.upscaler, self.batch, self.show_progress = upscaler, batch, progress
        self.on_frame = on_frame

    def fields(self, input: str, output: str, width: int | None, height: int | None) -> dict:
        up = self.upscaler
        scale = up.scale
        return {"input": input, "output": output, "model": up.model.name, "scale": scale,
                "channels": up.model.channels, "device": str(up.device),
                "device_name": report.device_name(up.device), "dtype": str(up.dtype),
                "batch": self.batch, "tile": up.tile,
                "input_size": [width, height] if width else None,
                "output_size": [width * scale, height * scale] if width else None}

    def run(self, items, sink, out_layout, total: int, label: str) -> tuple[int, float]:
        with _progress(total, label, self.show_progress) as bar:
            pipeline = Pipeline(self.upscaler, sink, out_layout, self.batch, progress=bar,
                                on_frame=self.on_frame)
            start = time.perf_counter()
            frames = pipeline.run(items)
            if hasattr(sink, "close"):
                sink.close()
            return frames, time.perf_counter() - start

    def to_video(self, reader, info, output: str, encode: EncodeOptions, copied,
                 time_offset: float) -> dict:
        scale = self.upscaler.scale
        width, height = info.width * scale, info.height * scale
        with atomic_output(output) as temporary:
            codec = choose_codec(str(temporary), info, encode.codec)
            temporary.unlink(missing_ok=True)
            layout = choose_layout(codec, info.layout, info, encode.pix_fmt, width, height)
            writer = VideoWriter(temporary, info, layout, width, height, encode, codec, copied,
                                 time_offset, display_path=output)
            try:
                frames, seconds = self.run(reader, writer, lambda _: layout, info.frames,
                                           Path(info.path).name)
            except BaseException:
                writer.abort()
                raise
        result = report.build(self.fields(info.path, output, info.width, info.height),
                              self.upscaler.times, frames, seconds)
        result.update(codec=codec, pix_fmt=writer.pix_fmt)
        return result

    def to_pipe(self, reader, info, layout, stdout, label: str) -> dict:
        sink = RawWriter(stdout if stdout is not None else sys.stdout.buffer)
        frames, seconds = self.run(reader, sink, lambda _: layout, info.frames, label)
        result = report.build(self.fields(info.path, PIPE, info.width, info.height),
                              self.upscaler.times, frames, seconds)
        result["pix_fmt"] = layout.av_format()
        return result

    def images(self, pairs: list[tuple[Path, Path]], input: str, output: str) -> dict:
        def pictures():
            for source, destination in pairs:
                picture = image_io.read_image(source)
                picture.extra["destination"] = destination
                yield picture

        def layout_of(picture):
            return image_io.output_layout(picture.layout, picture.extra["destination"])

        for _, destination in pairs:
            image_io.image_format(destination)
        frames, seconds = self.run(pictures(), _ImageSink(), layout_of, len(pairs),
                                   Path(input).name)
        return report.build(self.fields(input, output, None, None), self.upscaler.times,
                            frames, seconds)
