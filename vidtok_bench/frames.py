"""Frame-count rules (4k+1, 4k, 8k+1, ...) and fitting clips to them."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FrameRule:
    """Accepted frame counts: ``multiple * k + remainder`` for ``k >= 0``, at least ``minimum``."""

    multiple: int = 1
    remainder: int = 0
    minimum: int = 1

    def accepts(self, t: int) -> bool:
        return t >= self.minimum and (t - self.remainder) % self.multiple == 0

    def fit_up(self, t: int) -> int:
        """Smallest accepted count >= t."""
        n = max(t, self.minimum)
        while not self.accepts(n):
            n += 1
        return n

    def describe(self) -> str:
        if self.multiple == 1:
            return "any frame count"
        r = self.remainder % self.multiple
        base = f"{self.multiple}k" + (f"+{r}" if r else "")
        return f"{base} frames (e.g. {', '.join(str(self.fit_up(self.minimum + i * self.multiple)) for i in range(3))})"

    @classmethod
    def parse(cls, text: str) -> "FrameRule":
        """Parse '4k+1', '4k', '8k+1', 'any'."""
        s = str(text).replace(" ", "").lower()
        if s in ("any", "1k", "k"):
            return cls()
        try:
            mult, _, rem = s.partition("k")
            m = int(mult)
            r = int(rem.lstrip("+")) if rem else 0
        except ValueError:
            from .errors import ConfigError

            raise ConfigError(f"frame rule '{text}' is not of the form 'Nk' or 'Nk+R'") from None
        return cls(multiple=m, remainder=r, minimum=r if r > 0 else m)


def pad_frames(video: torch.Tensor, target: int) -> torch.Tensor:
    """Repeat the last frame of (B,C,T,H,W) until it has ``target`` frames."""
    t = video.shape[2]
    if target <= t:
        return video
    tail = video[:, :, -1:].expand(-1, -1, target - t, -1, -1)
    return torch.cat([video, tail], dim=2)
