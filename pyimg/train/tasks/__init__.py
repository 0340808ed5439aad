"""Training tasks by name (a recipe's ``task``): each builds its models and data and knows
its training step and validation."""

import importlib

# task name -> (module, class); imported on use so a recipe loads only what it needs.
TASKS = {
    "pixel": ("pyimg.train.tasks.pixel", "PixelTask"),
    "segmentation": ("pyimg.train.tasks.segmentation", "SegmentationTask"),
    "srgan": ("pyimg.train.tasks.srgan", "SRGANTask"),
    "pix2pix": ("pyimg.train.tasks.pix2pix", "Pix2PixTask"),
    "cyclegan": ("pyimg.train.tasks.cyclegan", "CycleGANTask"),
    "dcgan": ("pyimg.train.tasks.dcgan", "DCGANTask"),
    "style": ("pyimg.train.tasks.style", "StyleTask"),
}


def build_task(config: dict):
    name = config.get("task")
    if name not in TASKS:
        raise ValueError(f"recipe task must be one of {sorted(TASKS)}, got {name!r}")
    module, cls = TASKS[name]
    return getattr(importlib.import_module(module), cls)(config)
