"""One router per resource; `errors(...)` documents the error answers of a route."""

from typing import Any

from service.schemas import ErrorOut


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, all with the one error shape."""
    return {status: {"model": ErrorOut} for status in statuses}
