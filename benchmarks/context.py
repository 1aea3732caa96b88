"""What every benchmark gets: the scale, an organisation-count override and a cache shared by
the benchmarks of one run (e.g. one simulated round serves two benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Scale = Literal["smoke", "full"]


@dataclass
class Context:
    scale: Scale = "full"
    #: Overrides every benchmark's organisation count (e.g. 2,000 instead of 10,000).
    orgs: int | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def pick(self, smoke: int, full: int) -> int:
        """The organisation count for this scale, unless overridden."""
        if self.orgs is not None:
            return self.orgs
        return smoke if self.scale == "smoke" else full

    @property
    def smoke(self) -> bool:
        return self.scale == "smoke"
