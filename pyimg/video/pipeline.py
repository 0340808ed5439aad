"""Decode thread -> bounded queue -> batched model -> bounded queue -> encode thread.

The decode thread reads pictures, groups consecutive ones of one shape and layout into
batches and uploads each (on CUDA: an asynchronous copy); the calling thread runs the model;
the encode thread waits for each batch's download and writes its pictures. FFmpeg and PyTorch
release the GIL while they work, so the three overlap; the bounded queues keep memory flat
when one stage is slower. An exception in any stage (or Ctrl-C) stops all three and is raised
in the caller.
"""

import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pyimg.video.layout import Layout
from pyimg.video.picture import Picture
from pyimg.video.planes import ColourPath
from pyimg.video.transfer import DeviceBatch
from pyimg.video.video_reader import Passthrough

_END = object()
_POLL_S = 0.1


@dataclass
class _Job:
    pictures: list[Picture]  # pts and extra of each picture; planes dropped once uploaded
    path: ColourPath
    batch: DeviceBatch


class _Stopped(Exception):
    """Another stage failed or the caller was interrupted."""


class Pipeline:
    def __init__(self, upscaler, sink, out_layout: Callable[[Picture], Layout],
                 batch_size: int = 1, depth: int = 4, progress=None,
                 on_frame: Callable[[Picture], None] | None = None):
        if batch_size < 1:
            raise ValueError(f"--batch must be positive, got {batch_size}")
        self.upscaler, self.sink, self.out_layout = upscaler, sink, out_layout
        self.batch_size = batch_size
        self.inputs: queue.Queue = queue.Queue(maxsize=depth)
        self.outputs: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.progress, self.on_frame = progress, on_frame
        self.frames = 0
        self.times = upscaler.times

    def _put(self, q: queue.Queue, item) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        raise _Stopped

    def _guarded(self, work: Callable[[], None]) -> Callable[[], None]:
        def run():
            try:
                work()
            except _Stopped:
                pass
            except BaseException as error:  # reported to the caller, who re-raises it
                self.errors.append(error)
                self.stop.set()
        return run

    def _job(self, pictures: list[Picture]) -> _Job:
        first = pictures[0]
        path = self.upscaler.colour_path(first.layout, self.out_layout(first))
        batch = self.upscaler.upload([p.planes for p in pictures])
        for picture in pictures:
            picture.planes = []
        return _Job(pictures, path, batch)

    def _decode(self, items: Iterable) -> None:
        pending: list[Picture] = []
        iterator = iter(items)
        waited = 0.0
        while not self.stop.is_set():
            start = time.perf_counter()
            item = next(iterator, _END)
            waited += time.perf_counter() - start
            if item is _END:
                break
            if isinstance(item, Passthrough):
                self._put(self.inputs, item)
                continue
            self.times.add("decode", waited)
            waited = 0.0
            if pending and (len(pending) == self.batch_size
                            or item.batch_key() != pending[0].batch_key()):
                self._put(self.inputs, self._job(pending))
                pending = []
            pending.append(item)
        if pending:
            self._put(self.inputs, self._job(pending))
        self._put(self.inputs, _END)

    def _encode(self) -> None:
        while True:
            item = self._get(self.outputs)
            if item is _END:
                return
            if isinstance(item, Passthrough):
                self.sink.copy(item.packet)
                continue
            arrays = self.upscaler.host_arrays(item.batch, len(item.pictures))
            for i, picture in enumerate(item.pictures):
                out = Picture([a[i] for a in arrays], item.path.out_layout, picture.pts,
                              picture.extra)
                if self.on_frame is not None:
                    self.on_frame(out)
                with self.times.timed("encode"):
                    self.sink.write(out)
                self.frames += 1
                if self.progress is not None:
                    self.progress.update(1)

    def run(self, items: Iterable) -> int:
        """Push ``items`` (pictures and passthrough packets) through; the frame count."""
        decoder = threading.Thread(target=self._guarded(lambda: self._decode(items)),
                                   name="pyimg-decode", daemon=True)
        encoder = threading.Thread(target=self._guarded(self._encode), name="pyimg-encode",
                                   daemon=True)
        decoder.start()
        encoder.start()
        try:
            while True:
                item = self._get(self.inputs)
                if item is _END:
                    self._put(self.outputs, _END)
                    break
                if isinstance(item, _Job):
                    item.batch = self.upscaler.compute(item.batch, item.path)
                self._put(self.outputs, item)
            while encoder.is_alive() and not self.stop.is_set():
                encoder.join(_POLL_S)
        except _Stopped:
            pass
        except BaseException:
            self.stop.set()
            raise
        finally:
            clean = not self.stop.is_set()
            self.stop.set()
            # A decode thread blocked on a pipe that never ends is left behind (a daemon).
            decoder.join(None if clean else 5.0)
            encoder.join()
        if self.errors:
            raise self.errors[0]
        return self.frames
