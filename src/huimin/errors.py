"""One error base for the whole platform.

A `HuiminError` carries an HTTP status and a stable snake_case code that clients act on; the API
turns it into `{"code": ..., "message": ...}`, the CLI into a message and a non-zero exit.
Expected refusals are 4xx with a code, never a 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "HuiminError",
    "InvalidInput",
    "NotFound",
    "Problem",
]


class HuiminError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    # False for refusals that may not hold on a retry (a round not open yet, a busy server): an
    # idempotent request does not store them as its answer.
    final: ClassVar[bool] = True

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, final: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may narrow its class's code
        if status is not None:
            self.status = status  # type: ignore[misc]
        if final is not None:
            self.final = final  # type: ignore[misc]

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


class NotFound(HuiminError):
    status = 404
    code = "not_found"


class ConflictError(HuiminError):
    status = 409
    code = "conflict"


class Problem:
    """One thing wrong with an input, located by a field path such as `batches[2].threshold`."""

    __slots__ = ("field", "message")

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message

    def __repr__(self) -> str:
        return f"Problem({self.field!r}, {self.message!r})"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidInput(HuiminError):
    """Input that fails validation; lists every problem found, each naming its field."""

    status = 422
    code = "invalid_input"

    def __init__(
        self, problems: list[Problem], *, code: str | None = None, summary: str | None = None
    ) -> None:
        self.problems = problems
        lines = "; ".join(str(problem) for problem in problems)
        super().__init__(f"{summary}: {lines}" if summary else lines, code=code)

    def body(self) -> dict[str, Any]:
        return {**super().body(), "problems": [problem.as_dict() for problem in self.problems]}


class ConfigurationError(HuiminError):
    status = 500
    code = "configuration_error"
