"""More than one process (``torchrun --nproc-per-node N -m pyimg upscale IN OUT``): the video
is split at keyframes into N time ranges of about equal frame counts, each rank decodes from
its keyframe, upscales its range and encodes it as a piece (same encoder, same settings, the
input's timestamps); rank 0 then joins the pieces' packets, in order and unchanged, with the
input's audio and subtitles, into the output: no frame is encoded twice.

Every encoder starts a piece with an IDR frame and delays timestamps by the same reorder depth
(same settings), so consecutive pieces' decode timestamps stay increasing and the joined
stream decodes as one. Ranks talk over torch.distributed with gloo (Python objects only), so
the same code runs across CPUs, GPUs (each rank on ``cuda:LOCAL_RANK``) or machines, given a
folder all ranks can see for the pieces (the output's).
"""

import heapq
import os
import shutil
import time
from pathlib import Path

from pyimg.atomic import atomic_output
from pyimg.video import report as report_module
from pyimg.video.stats import StageTimes
from pyimg.video.video_reader import VideoReader, open_input
from pyimg.video.video_writer import VideoWriter, choose_codec, choose_layout


def plan(path: str, first: int, stop: int | None, ranks: int) -> dict:
    """Frame timestamps (display order) and keyframes from the packets alone, and the time
    range of each rank: [start, stop) in the video stream's time base (None: to the end)."""
    with open_input(path) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stamps, keys = [], set()
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            stamps.append(packet.pts)
            if packet.is_keyframe:
                keys.add(packet.pts)
    stamps.sort()
    window = stamps[first:stop]
    if not window:
        raise ValueError(f"{path}: has no video frames in the range asked for")
    end = stamps[stop] if stop is not None and stop < len(stamps) else None
    candidates = [i for i, pts in enumerate(window) if pts in keys and i > 0]
    cuts, last = [], 0
    for k in range(1, ranks):
        ideal = k * len(window) / ranks
        best = min((i for i in candidates if i > last), key=lambda i: abs(i - ideal),
                   default=None)
        if best is not None:
            cuts.append(best)
            last = best
    bounds = [0, *cuts]
    ranges = [(window[b], window[e] if e < len(window) else end)
              for b, e in zip(bounds, [*cuts, len(window)], strict=True)]
    ranges += [None] * (ranks - len(ranges))  # fewer keyframes than ranks: some idle
    return {"ranges": ranges, "frames": len(window), "windowed": first > 0 or stop is not None,
            "start_pts": window[0], "end_pts": end, "time_base": stream.time_base}


def _init():
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist


def upscale(job, input: str, output: str, encode, first: int, stop: int | None,
            copy_streams: bool) -> dict | None:
    """Rank 0 returns the joined run's report; other ranks None."""
    dist = _init()
    rank, world = dist.get_rank(), dist.get_world_size()
    message = [None]
    if rank == 0:
        try:
            parts = Path(output).parent / f".{Path(output).name}.parts-{os.getpid()}"
            parts.mkdir(parents=True)
            message = [{"plan": plan(input, first, stop, world), "parts": str(parts)}]
        except (OSError, ValueError) as error:
            message = [{"error": error}]
    dist.broadcast_object_list(message, src=0)
    if "error" in message[0]:
        raise message[0]["error"]
    shared = message[0]
    start = time.perf_counter()
    outcome = _upscale_range(job, input, shared, rank, encode)
    outcomes = [None] * world
    dist.all_gather_object(outcomes, outcome)
    parts = Path(shared["parts"])
    failures = [o["error"] for o in outcomes if "error" in o]
    try:
        if failures:
            raise failures[0]
        if rank != 0:
            return None
        joined = join([o["piece"] for o in outcomes if o.get("piece")], input, output,
                      shared["plan"], copy_streams)
        return _merged_report(job, input, output, outcomes, shared["plan"],
                              time.perf_counter() - start, joined)
    finally:
        dist.barrier()
        if rank == 0:
            shutil.rmtree(parts, ignore_errors=True)
        dist.destroy_process_group()


def _upscale_range(job, input: str, shared: dict, rank: int, encode) -> dict:
    """This rank's piece: {"piece", "frames", "seconds", "samples"} or {"error"}."""
    plan_ = shared["plan"]
    window = plan_["ranges"][rank]
    if window is None:
        return {"piece": None, "frames": 0, "seconds": 0.0, "samples": {}}
    try:
        reader = VideoReader(input, pts_start=window[0], pts_stop=window[1], copy_streams=False)
        try:
            info = reader.info
            scale = job.upscaler.scale
            width, height = info.width * scale, info.height * scale
            piece = Path(shared["parts"]) / f"piece-{rank:04d}.mov"
            codec = choose_codec(str(piece), info, encode.codec)
            _check_piece_codec(piece, codec)
            layout = choose_layout(codec, info.layout, info, encode.pix_fmt, width, height)
            offset = float(plan_["start_pts"] * plan_["time_base"]) if plan_["windowed"] else 0
            writer = VideoWriter(piece, info, layout, width, height, encode, codec, (), offset)
            try:
                frames, seconds = job.run(reader, writer, lambda _: layout, 0,
                                          f"rank {rank}")
            except BaseException:
                writer.abort()
                raise
        finally:
            reader.close()
        return {"piece": str(piece), "frames": frames, "seconds": seconds,
                "size": (info.width, info.height),
                "samples": job.upscaler.times.samples(), "codec": codec,
                "pix_fmt": writer.pix_fmt}
    except Exception as error:  # every rank must reach the gather, failed or not
        return {"error": error}


def _check_piece_codec(piece: Path, codec: str) -> None:
    import av

    with av.open(str(piece), "w") as probe:
        supported = probe.supported_codecs
    piece.unlink(missing_ok=True)
    if supported and codec not in supported and av.Codec(codec, "w").name not in supported:
        raise ValueError(f"--codec {codec}: more than one process joins pieces through MOV, "
                         "which cannot hold this codec; choose another (libx264, libx265, ...)")


def join(pieces: list[str], input: str, output: str, plan_: dict, copy_streams: bool) -> dict:
    """Concatenate the pieces' video packets and the input's audio/subtitle packets (trimmed
    to the frame window) into ``output``, atomically."""
    import av

    # Raw sample times: MOV keeps every timestamp exactly, in the track's time base, but
    # presents a piece's start through an edit list rounded to milliseconds.
    sources = [av.open(p, options={"ignore_editlist": "1"}) for p in pieces]
    original = av.open(input)
    try:
        headers = {bytes(s.streams.video[0].codec_context.extradata or b"") for s in sources}
        if len(headers) > 1:
            raise OSError(f"{output}: the pieces' encoder headers differ, so they cannot be "
                          "joined without re-encoding")
        with atomic_output(output) as temporary, av.open(str(temporary), "w") as container:
            template = sources[0].streams.video[0]
            video = container.add_stream_from_template(template)
            video.time_base = plan_["time_base"]
            rotation = _rotation(sources[0])
            if rotation:
                video.set_display_rotation(rotation)
            copies = {}
            if copy_streams:
                supported = container.supported_codecs
                for s in original.streams:
                    if s.type in ("audio", "subtitle") and (
                            not supported or s.codec_context.name in supported):
                        copies[s.index] = container.add_stream_from_template(s)
            start, end = _window_seconds(plan_)
            shift = plan_["start_pts"] if plan_["windowed"] else 0
            starts = [(r[0] - shift) * plan_["time_base"] for r in plan_["ranges"] if r]
            merged = heapq.merge(_video_packets(sources, starts, video),
                                 _copied_packets(original, copies, start, end,
                                                 plan_["windowed"]),
                                 key=lambda item: item[0])
            for _, packet in merged:
                container.mux(packet)
    finally:
        for s in sources:
            s.close()
        original.close()
    return {"pieces": len(pieces)}


def _rotation(container) -> int:
    for frame in container.decode(video=0):
        rotation = round(frame.rotation or 0) % 360
        container.seek(0)
        return rotation
    return 0


def _window_seconds(plan_: dict) -> tuple[float, float]:
    base = plan_["time_base"]
    end = plan_["end_pts"]
    return float(plan_["start_pts"] * base), float(end * base) if end is not None else float(
        "inf")


def _stamp(packet) -> float:
    value = packet.dts if packet.dts is not None else packet.pts
    return float(value * packet.time_base) if value is not None else 0.0


def _video_packets(sources, starts, stream):
    """Each piece's packets moved back to where its first frame belongs (``starts``, seconds
    as Fractions): its first packet in decode order is its first frame, an IDR."""
    for source, start in zip(sources, starts, strict=True):
        piece_stream = source.streams.video[0]
        shift = None
        for packet in source.demux(piece_stream):
            if not packet.size:
                continue
            if shift is None:
                first = start / piece_stream.time_base
                if first.denominator != 1:
                    raise OSError(f"{source.name}: its time base cannot hold the frame times")
                shift = int(first) - packet.pts
            packet.pts += shift
            packet.dts += shift
            packet.stream = stream
            yield _stamp(packet), packet


def _copied_packets(original, copies: dict, start: float, end: float, windowed: bool):
    """The input's audio/subtitle packets in [start, end) seconds, moved to start at 0 when
    the frame window does not start at the beginning."""
    if not copies:
        return
    original.seek(0)
    for packet in original.demux([original.streams[i] for i in copies]):
        if not packet.size or (packet.pts is None and packet.dts is None):
            continue
        when = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
        if (windowed and when < start) or when >= end:
            continue
        if windowed:
            shift = round(start / packet.time_base)
            packet.pts = None if packet.pts is None else packet.pts - shift
            packet.dts = None if packet.dts is None else packet.dts - shift
        packet.stream = copies[packet.stream.index]
        yield _stamp(packet), packet


def _merged_report(job, input, output, outcomes, plan_, seconds, joined) -> dict:
    times = StageTimes()
    for outcome in outcomes:
        times.add_samples(outcome["samples"])
    frames = sum(o["frames"] for o in outcomes)
    info = next(o for o in outcomes if o.get("piece"))
    fields = job.fields(input, output, *info["size"])
    result = report_module.build(fields, times, frames, seconds)
    result.update(ranks=len(outcomes), frames_per_rank=[o["frames"] for o in outcomes],
                  pieces=joined["pieces"], codec=info["codec"], pix_fmt=info["pix_fmt"])
    return result
