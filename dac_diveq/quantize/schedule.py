"""When codebook replacement runs (paper appendix B.1)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class ReplacementSchedule:
    """Replace dead codewords every ``every`` steps up to ``slowdown_at``, then every
    ``every_after`` steps, and never in the last ``stop_before_end`` steps of a run
    of ``total_iters`` steps (unknown length: never stops). ``every <= 0`` disables it.

    No defaults here: the values are the :class:`~dac_diveq.quantize.core.Quantizer` options
    ``replace_every`` ... (the paper's 100 up to 2000, 500 after, none in the last 1000), declared there once.
    """

    every: int
    every_after: int
    slowdown_at: int
    stop_before_end: int
    total_iters: Optional[int]

    def __post_init__(self) -> None:
        for name in ("every", "every_after", "slowdown_at", "stop_before_end"):
            if getattr(self, name) < 0:
                raise ConfigError(f"replace_{name} must be >= 0 (0 disables replacement), got {getattr(self, name)}")
        if self.every > 0 and self.every_after <= 0:
            raise ConfigError(f"replace_every_after must be > 0, got {self.every_after}")
        if self.total_iters is not None and self.total_iters <= 0:
            raise ConfigError(f"total_iters must be > 0, got {self.total_iters}")

    @property
    def enabled(self) -> bool:
        return self.every > 0

    def is_due(self, step: int) -> bool:
        """Whether replacement runs at the end of training step ``step`` (1-based)."""
        if not self.enabled:
            return False
        if self.total_iters is not None and step > self.total_iters - self.stop_before_end:
            return False
        interval = self.every if step <= self.slowdown_at else self.every_after
        return step % interval == 0
