"""Domain errors. Each carries the HTTP status the web edge maps it to."""

from __future__ import annotations


class KbError(Exception):
    """Base class for kb errors."""

    status_code = 500

    def __init__(self, message: str | None = None, **extra: object) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        self.extra = extra

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ArticleError(KbError):
    """An article file is invalid."""

    status_code = 422

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {message}", path=path, line=line)
        self.path = path
        self.line = line


class NotFoundError(KbError):
    """Not found."""

    status_code = 404


class InvalidQueryError(KbError):
    """The query is not valid."""

    status_code = 400


class ValidationError(KbError):
    """Input failed validation."""

    status_code = 422

    def __init__(self, errors: list[dict[str, str]], message: str = "Validation failed") -> None:
        super().__init__(message, errors=errors)
        self.errors = errors


class RateLimitedError(KbError):
    """Too many requests: slow down."""

    status_code = 429

    def __init__(self, retry_after: int = 60) -> None:
        super().__init__("Too many requests, try again later", retry_after=retry_after)
        self.retry_after = retry_after


class IndexUnavailableError(KbError):
    """The search index is not available."""

    status_code = 503


class AuthError(KbError):
    """Authentication required."""

    status_code = 401


class ForbiddenError(KbError):
    """You do not have access to this page."""

    status_code = 403
