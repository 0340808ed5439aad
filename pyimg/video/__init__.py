"""Video and image super-resolution: ``upscale(input, output, model)`` reads a video (PyAV),
an image, a folder of images or raw frames, runs a super-resolution model in a threaded
decode -> model -> encode pipeline, and writes the result with the input's metadata and
audio. ``load_model`` resolves what ``--model`` names; ``save_weights`` writes a weights file
that names its architecture, so the file alone is a model."""

from pyimg.video.api import upscale
from pyimg.video.model_spec import SRModel, load_model, save_weights

__all__ = ["SRModel", "load_model", "save_weights", "upscale"]
