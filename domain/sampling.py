"""随机抽查: a reproducible, stratified random sample of organisations (seed 002 §六(五)).

Pure and deterministic: the same population, size, stratification and seed always draw the
same organisations, on any machine and Python version (``random.Random`` seeded with a
string hashes it with SHA-512, version 2 seeding, stable across releases). The seed is
recorded with the draw, so anyone can draw again from the recorded population and compare.

Allocation: a *share* takes ``round(share × n)`` of each stratum (at least one of a
non-empty stratum when the share is above zero); a *count* is split over the strata in
proportion to their size by largest remainders (ties to the stratum named first), never more
than a stratum holds. Within a stratum the organisations are sorted by id and sampled with a
generator seeded by ``<seed>/<stratum>``, so adding a stratum does not change another's draw.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from domain.errors import FieldError, ValidationFailed


class Stratum(StrEnum):
    """What a sample is stratified by."""

    NONE = "none"
    TOWNSHIP = "township"
    SYSTEM = "system"
    TYPE = "type"

    @property
    def label(self) -> str:
        """Chinese name shown to users."""
        return _STRATUM_LABELS[self]


_STRATUM_LABELS: dict[Stratum, str] = {
    Stratum.NONE: "不分层",
    Stratum.TOWNSHIP: "按乡镇（街道）分层",
    Stratum.SYSTEM: "按系统分层",
    Stratum.TYPE: "按组织类型分层",
}


class SampleUnit(BaseModel):
    """One organisation of the population with the keys it can be stratified by."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_id: str = Field(min_length=1)
    township: str
    system: str
    type: str

    def stratum(self, by: Stratum) -> str:
        """The stratum's key of this organisation under ``by`` (``""`` when unstratified)."""
        match by:
            case Stratum.TOWNSHIP:
                return self.township
            case Stratum.SYSTEM:
                return self.system
            case Stratum.TYPE:
                return self.type
        return ""


class SampleSize(BaseModel):
    """How many to draw: a ``count`` of organisations or a ``share`` of each stratum."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    count: int | None = Field(default=None, ge=1, le=100_000)
    share: Decimal | None = Field(default=None, gt=0, le=1, max_digits=5, decimal_places=4)

    @model_validator(mode="after")
    def _exactly_one(self) -> SampleSize:
        if (self.count is None) == (self.share is None):
            raise ValueError("必须且只能给出抽查数量 count 或抽查比例 share 之一")
        return self


def _allocate_share(sizes: dict[str, int], share: Decimal) -> dict[str, int]:
    taken = {}
    for key, n in sizes.items():
        k = int((share * n).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        taken[key] = min(n, max(1, k))
    return taken


def _allocate_count(sizes: dict[str, int], count: int) -> dict[str, int]:
    total = sum(sizes.values())
    count = min(count, total)
    quotas = {key: Decimal(count * n) / Decimal(total) for key, n in sizes.items()}
    taken = {key: min(sizes[key], math.floor(q)) for key, q in quotas.items()}
    # Largest remainders first; ties go to the stratum named first (sizes is sorted).
    order = sorted(sizes, key=lambda key: -(quotas[key] - math.floor(quotas[key])))
    left = count - sum(taken.values())
    while left > 0:
        for key in order:
            if left == 0:
                break
            if taken[key] < sizes[key]:
                taken[key] += 1
                left -= 1
    return taken


def allocate(units: Iterable[SampleUnit], size: SampleSize, by: Stratum) -> dict[str, int]:
    """How many organisations each stratum gives (strata sorted by key)."""
    counts: dict[str, int] = defaultdict(int)
    for unit in units:
        counts[unit.stratum(by)] += 1
    sizes = {key: counts[key] for key in sorted(counts)}
    if not sizes:
        return {}
    if size.share is not None:
        return _allocate_share(sizes, size.share)
    assert size.count is not None
    return _allocate_count(sizes, size.count)


def draw_sample(
    population: Sequence[SampleUnit], size: SampleSize, by: Stratum, seed: str
) -> tuple[str, ...]:
    """The organisations drawn (ids, sorted) from ``population`` with ``seed``.

    Raises :class:`ValidationFailed` on an empty population or seed, or an organisation
    listed twice."""
    if not seed.strip():
        raise ValidationFailed([FieldError("seed", "抽查种子不能为空")])
    if not population:
        raise ValidationFailed([FieldError("population", "抽查范围内没有组织")])
    ids = [u.org_id for u in population]
    if len(set(ids)) != len(ids):
        raise ValidationFailed([FieldError("population", "抽查范围内有重复的组织")])
    strata: dict[str, list[str]] = defaultdict(list)
    for unit in population:
        strata[unit.stratum(by)].append(unit.org_id)
    drawn: list[str] = []
    for key, k in allocate(population, size, by).items():
        members = sorted(strata[key])
        rng = random.Random(f"{seed}/{key}")
        drawn += rng.sample(members, k)
    return tuple(sorted(drawn))
