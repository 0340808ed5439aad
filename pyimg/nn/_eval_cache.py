"""The one way pyimg's modules keep what they precompute for inference (BatchNorm folded into
a per-channel scale and shift): computed from some source tensors, reused while none of them
changed, so it can never be stale.

A cached value is read only with gradients off (with them on, the sources get their
gradients through the computation, so it runs every call). It is keyed on each source's
identity, storage, dtype and version counter, which every in-place write bumps (an optimizer
step, ``load_state_dict``'s copy, a running-statistics update, an edit by hand), and the
module drops it on ``train()``, ``load_state_dict()`` and moves (``to()``, ``half()``...),
which replace or rewrite its tensors.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn


def _key(sources: Sequence[torch.Tensor | None]) -> tuple:
    return tuple(None if t is None else (id(t), t._version, t.data_ptr(), t.dtype)
                 for t in sources)


class EvalCache:
    """One cached value and the state of the sources it was computed from."""

    __slots__ = ("_key", "_value")

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._key = None
        self._value = None

    def get(self, sources: Sequence[torch.Tensor | None], compute: Callable[[], object],
            context: object = None):
        """compute(), or its cached value while the sources, and ``context`` (what else the
        value depends on, such as the dtype it is computed in), are as they were when it ran."""
        if torch.is_grad_enabled():
            return compute()
        key = (context, _key(sources))
        if key != self._key:
            self._value, self._key = compute(), key
        return self._value


class CachesForEval(nn.Module):
    """A module whose ``EvalCache`` attributes are dropped on ``train()``,
    ``load_state_dict()`` and moves."""

    def _clear_eval_caches(self) -> None:
        for value in vars(self).values():
            if isinstance(value, EvalCache):
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
