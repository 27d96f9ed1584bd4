"""Why a command is refused. A decision lists every problem it finds, never just the first."""

from __future__ import annotations

from enum import StrEnum

from service.domain.values import frozen


class ErrorType(StrEnum):
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    FORBIDDEN = "forbidden"
    UNAUTHENTICATED = "unauthenticated"
    SYSTEM = "system"


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    INVALID_STATUS = "invalid_status"
    VERSION_CONFLICT = "version_conflict"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    NOT_EDITABLE = "not_editable"
    HAS_DEPENDENCIES = "has_dependencies"
    VOUCHER_IN_USE = "voucher_in_use"
    ALREADY_FULFILLED = "already_fulfilled"
    SUBJECT_ERASED = "subject_erased"
    PROCESSING_FAILED = "processing_failed"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"


# One place says which kind of error each code is, so no caller can pair them wrongly.
ERROR_TYPE_OF: dict[ErrorCode, ErrorType] = {
    ErrorCode.INVALID_REQUEST: ErrorType.VALIDATION,
    ErrorCode.NOT_FOUND: ErrorType.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: ErrorType.CONFLICT,
    ErrorCode.INVALID_STATUS: ErrorType.VALIDATION,
    ErrorCode.VERSION_CONFLICT: ErrorType.CONFLICT,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: ErrorType.CONFLICT,
    ErrorCode.NOT_EDITABLE: ErrorType.CONFLICT,
    ErrorCode.HAS_DEPENDENCIES: ErrorType.CONFLICT,
    ErrorCode.VOUCHER_IN_USE: ErrorType.CONFLICT,
    ErrorCode.ALREADY_FULFILLED: ErrorType.CONFLICT,
    ErrorCode.SUBJECT_ERASED: ErrorType.CONFLICT,
    # The service could not process the command (it was parked); nothing changed.
    ErrorCode.PROCESSING_FAILED: ErrorType.SYSTEM,
    # No valid token where one is needed; a valid one that does not allow the command.
    ErrorCode.UNAUTHENTICATED: ErrorType.UNAUTHENTICATED,
    ErrorCode.FORBIDDEN: ErrorType.FORBIDDEN,
    # Not decided (a preview beyond the batch's limit): send it again.
    ErrorCode.RATE_LIMITED: ErrorType.SYSTEM,
}


@frozen
class Problem:
    """One reason a command cannot be applied; `field` is the dotted path in the command."""

    code: ErrorCode
    message: str
    field: str | None = None

    @property
    def error_type(self) -> ErrorType:
        return ERROR_TYPE_OF[self.code]
