"""The one way pyimg's modules keep what they precompute for inference (BatchNorm folded into
a per-channel scale and shift): computed from some source tensors, reused while none of them
changed, so it can never be stale.

A cached value is computed again on every call while autograd records through a source (grad
mode on and a source that requires grad), so that the source gets its gradient; with
gradients off, or on but through none of the sources (a frozen BatchNorm while the rest of a
network is fine-tuned), it is reused. It is keyed on each source's identity, storage, dtype and
version counter, which every in-place write bumps (an optimizer step, ``load_state_dict``'s
copy, a running-statistics update, an edit by hand); the cache holds the sources it was
computed from, so a freed source's identity and memory cannot come back as another tensor's.
A module drops it on ``train()``, ``load_state_dict()`` and moves (``to()``, ``half()``...),
which replace or rewrite its tensors. Under torch.compile it is computed in the graph, never
cached.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from pyimg.nn.fold import affine_scale_shift, batch_norm_scale_shift, batch_norm_statistics_terms


def _key(sources: Sequence[torch.Tensor | None]) -> tuple:
    return tuple(None if t is None else (id(t), t._version, t.data_ptr(), t.dtype)
                 for t in sources)


def _records_through(sources: Sequence[torch.Tensor | None]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in sources)


def _batch_norm_tensors(bn: nn.BatchNorm2d) -> tuple:
    """(running_mean, running_var, weight, bias) as bn's attributes are. nn.Module.__getattr__
    takes half a microsecond a read, as long as an op's own checks; a stock BatchNorm2d (no
    subclass's properties, no parametrization) is read from the dicts it reads, 20x faster."""
    if type(bn) is nn.BatchNorm2d:
        buffers, parameters = bn._buffers, bn._parameters
        return (buffers["running_mean"], buffers["running_var"], parameters["weight"],
                parameters["bias"])
    return bn.running_mean, bn.running_var, bn.weight, bn.bias


class EvalCache:
    """One cached value and the state of the sources it was computed from."""

    __slots__ = ("_key", "_sources", "_value")

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._key = self._sources = self._value = None

    def get(self, sources: Sequence[torch.Tensor | None], compute: Callable[[], object],
            context: object = None):
        """compute(), or its cached value while the sources, and ``context`` (what else the
        value depends on, such as the dtype it is computed in), are as they were when it ran
        and autograd records through none of the sources."""
        # Compiled, the computation is part of the graph, and a key of data pointers would
        # only break it.
        if _records_through(sources) or torch.compiler.is_compiling():
            return compute()
        key = (context, _key(sources))
        if key != self._key:
            self._value, self._key, self._sources = compute(), key, tuple(sources)
        return self._value


class BatchNormFold:
    """The eval-mode (scale, shift) of a BatchNorm2d and the bias of the convolution before it
    (pyimg/nn/fold.py), for inputs that accumulate in a given dtype, with as little computed
    per call as autograd allows: everything cached while it records through none of them;
    BatchNorm's fold cached and one addcmul per call while it records through the convolution's
    bias alone (fine-tuning around a frozen BatchNorm); the running statistics' terms cached and
    two or three ops per call while it records through BatchNorm's weight or bias."""

    __slots__ = ("_batch_norm", "_fold", "_statistics")

    def __init__(self):
        self._fold, self._batch_norm, self._statistics = EvalCache(), EvalCache(), EvalCache()

    def clear(self) -> None:
        self._fold.clear()
        self._batch_norm.clear()
        self._statistics.clear()

    def get(self, bn: nn.BatchNorm2d, conv_bias: torch.Tensor | None, dtype: torch.dtype):
        """(scale, shift) with ``bn(z + conv_bias) == z * scale + shift``, or None for a
        BatchNorm without running statistics."""
        mean, var, weight, bias = _batch_norm_tensors(bn)
        if mean is None or var is None:
            return None
        context = (dtype, bn.eps)
        if _records_through((weight, bias)):
            inv_std, neg_mean = self._statistics.get(
                (mean, var), lambda: batch_norm_statistics_terms(bn, dtype), context)
            return affine_scale_shift(weight, bias, inv_std, neg_mean, conv_bias)
        if _records_through((conv_bias,)):
            scale, shift = self._batch_norm.get(
                (mean, var, weight, bias), lambda: batch_norm_scale_shift(bn, dtype), context)
            return scale, torch.addcmul(shift, conv_bias, scale)
        return self._fold.get((mean, var, weight, bias, conv_bias),
                              lambda: batch_norm_scale_shift(bn, dtype, conv_bias), context)


class CachesForEval(nn.Module):
    """A module whose ``EvalCache`` and ``BatchNormFold`` attributes are dropped on
    ``train()``, ``load_state_dict()`` and moves."""

    def _clear_eval_caches(self) -> None:
        for value in vars(self).values():
            if isinstance(value, (EvalCache, BatchNormFold)):
                value.clear()

    def train(self, mode: bool = True):
        self._clear_eval_caches()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self._clear_eval_caches()
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._clear_eval_caches()
        super()._load_from_state_dict(*args, **kwargs)
