"""Errors the domain raises: every one names the field and the reason (in Chinese for users)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: ``field`` is a dotted path, ``reason`` is shown to users."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class DomainError(Exception):
    """A business rule refused an action; ``code`` is a stable English code for clients."""

    def __init__(self, reason: str, *, code: str = "rejected", field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.field = field


class ValidationFailed(DomainError):
    """Input broke one or more field rules; all problems are reported together."""

    def __init__(self, errors: list[FieldError], *, code: str = "invalid") -> None:
        self.errors = errors
        super().__init__("；".join(str(e) for e in errors), code=code)


class PlanError(ValidationFailed):
    """A round plan failed to load or resolve."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors, code="invalid_plan")
