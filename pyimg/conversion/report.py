"""What ``convert`` did to a model: the patterns it fused, the modules and functions it swapped
one-for-one, what it left alone and why, and the parts it could not trace."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fusion:
    """A run of stock layers and functions now computed by one pyimg op or module."""

    parts: tuple[str, ...]  # what was fused, in order ("body.0 (Conv2d)", "relu() in body")
    result: str  # what computes it now
    rule: str


@dataclass(frozen=True)
class Swap:
    """A stock module or function replaced one-for-one by pyimg's."""

    path: str
    before: str
    after: str
    rule: str


@dataclass(frozen=True)
class LeftAlone:
    """A module or function convert did not change, and why (a near miss says what was
    missing for a fusion)."""

    path: str
    kind: str
    reason: str


@dataclass
class ConversionReport:
    fused: list[Fusion] = field(default_factory=list)
    swapped: list[Swap] = field(default_factory=list)
    left_alone: list[LeftAlone] = field(default_factory=list)
    # Why a layer or function was not fused with what follows it: (where, reason).
    near_misses: list[tuple[str, str]] = field(default_factory=list)
    # Modules converted module by module because fx could not trace their forward: (path,
    # reason).
    untraced: list[tuple[str, str]] = field(default_factory=list)

    def rules(self) -> Counter:
        """How many fusions and swaps each rule made."""
        return Counter(entry.rule for entry in [*self.fused, *self.swapped])

    def __str__(self) -> str:
        lines = [f"fused {len(self.fused)}:"]
        lines += [f"  {' + '.join(f.parts)} -> {f.result} ({f.rule})" for f in self.fused]
        lines.append(f"swapped {len(self.swapped)}:")
        lines += [f"  {s.path}: {s.before} -> {s.after}" for s in self.swapped]
        lines.append(f"left alone {len(self.left_alone)}:")
        lines += [f"  {a.path} ({a.kind}): {a.reason}" for a in self.left_alone]
        if self.near_misses:
            lines.append(f"near misses {len(self.near_misses)}:")
            lines += [f"  {where}: {reason}" for where, reason in self.near_misses]
        if self.untraced:
            lines.append(f"converted module by module {len(self.untraced)}:")
            lines += [f"  {path or '<root>'}: {reason}" for path, reason in self.untraced]
        return "\n".join(lines)
