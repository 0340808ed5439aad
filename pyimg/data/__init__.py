"""Data for training and evaluating pyimg's models: reading images, MATLAB-compatible
colour conversion and bicubic resize, super-resolution pairs, folder datasets in the
layouts people have, packaged sample photographs, and a resumable seeded sampler."""

from pyimg.data.color import gray_to_y, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from pyimg.data.imresize import imresize
from pyimg.data.io import list_images, read_array, read_image, read_mask
from pyimg.data.sampler import StepSampler, sample_rng
from pyimg.data.samples import SampleImages, sample_images
from pyimg.data.source import ImageSource
from pyimg.data.sr import PairedSR, SREval, SRPairs, eval_pair, paired_paths

__all__ = [
    "ImageSource",
    "PairedSR",
    "SREval",
    "SRPairs",
    "SampleImages",
    "StepSampler",
    "eval_pair",
    "gray_to_y",
    "imresize",
    "list_images",
    "paired_paths",
    "read_array",
    "read_image",
    "read_mask",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "sample_images",
    "sample_rng",
    "ycbcr_to_rgb",
]
