"""Triton kernels and their launchers. Imported lazily: pyimg works without Triton."""
