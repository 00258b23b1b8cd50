"""The controller's one error hierarchy.

Every expected failure is a ``ControllerError`` with a stable ``code`` (part of the wire contract:
clients and scripts match on it) and the HTTP status it maps to. The API layer renders all of
them, and every unexpected exception, as the MS-NCNBI error envelope
``{"error": {"code", "message", "target"?, "details"?}}``.

    ControllerError                     500 InternalServerError
    ├── InvalidInput                    400 InvalidInput          (validation of a body or value)
    │   ├── InvalidJson                 400 InvalidJson           (body is not a JSON object)
    │   ├── InvalidReference            400 InvalidReference      (reference to a missing resource)
    │   ├── ResourceIdMismatch          400 ResourceIdMismatch    (body resourceId differs from URI)
    │   └── MalformedRequest            400 MalformedRequest      (not valid HTTP/1.1)
    ├── Unauthorized                    401 Unauthorized          (no or bad credentials)
    ├── Forbidden                       403 Forbidden             (the role does not allow it)
    ├── NotFound                        404 NotFound
    ├── MethodNotAllowed                405 MethodNotAllowed
    ├── Conflict                        409 Conflict              (state conflict)
    │   ├── ResourceInUse               409 ResourceInUse         (delete of a referenced resource)
    │   ├── IpAddressInUse              409 IpAddressInUse        (static address held by another)
    │   ├── MacAddressInUse             409 MacAddressInUse       (static MAC held by another)
    │   ├── IpAddressExhausted          409 IpAddressExhausted    (no free address in the subnet)
    │   ├── MacAddressExhausted         409 MacAddressExhausted   (no free MAC in any macPool)
    │   └── VsidExhausted               409 VsidExhausted         (no free VSID in the range)
    ├── RequestTimeout                  408 RequestTimeout        (request not received in time)
    ├── PreconditionFailed              412 PreconditionFailed    (If-Match, missing parent)
    ├── PayloadTooLarge                 413 PayloadTooLarge
    ├── UriTooLong                      414 UriTooLong
    ├── UnsupportedMediaType            415 UnsupportedMediaType
    ├── TooManyConnections              429 TooManyConnections    (per client address)
    ├── TooManyFailedLogins             429 TooManyFailedLogins   (failed authentication, per
    │                                                              client address)
    ├── RequestHeaderFieldsTooLarge     431 RequestHeaderFieldsTooLarge
    └── ServiceUnavailable              503 ServiceUnavailable    (database unreachable or slow,
                                                                   or the connection limit)

The HTTP server itself (``controller/api/connection.py``) answers the protocol-level ones
(MalformedRequest, RequestTimeout, UriTooLong, TooManyConnections, RequestHeaderFieldsTooLarge,
and ServiceUnavailable at the connection limit) before the application sees the request.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of ``error.details``: a finer-grained cause with its own target."""

    code: str
    message: str
    target: str | None = None


class ControllerError(Exception):
    status = 500
    code = "InternalServerError"
    # Seconds after which the client may try again (the Retry-After header), when known.
    retry_after: int | None = None

    def __init__(
        self,
        message: str,
        *,
        target: str | None = None,
        details: tuple[ErrorDetail, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.details = details


class InvalidInput(ControllerError):
    status = 400
    code = "InvalidInput"


class InvalidJson(InvalidInput):
    code = "InvalidJson"


class InvalidReference(InvalidInput):
    code = "InvalidReference"


class ResourceIdMismatch(InvalidInput):
    code = "ResourceIdMismatch"


class MalformedRequest(InvalidInput):
    code = "MalformedRequest"


class Unauthorized(ControllerError):
    status = 401
    code = "Unauthorized"


class Forbidden(ControllerError):
    status = 403
    code = "Forbidden"


class NotFound(ControllerError):
    status = 404
    code = "NotFound"


class MethodNotAllowed(ControllerError):
    status = 405
    code = "MethodNotAllowed"


class Conflict(ControllerError):
    status = 409
    code = "Conflict"


class ResourceInUse(Conflict):
    code = "ResourceInUse"


class IpAddressInUse(Conflict):
    code = "IpAddressInUse"


class MacAddressInUse(Conflict):
    code = "MacAddressInUse"


class IpAddressExhausted(Conflict):
    code = "IpAddressExhausted"


class MacAddressExhausted(Conflict):
    code = "MacAddressExhausted"


class VsidExhausted(Conflict):
    code = "VsidExhausted"


class RequestTimeout(ControllerError):
    status = 408
    code = "RequestTimeout"


class PreconditionFailed(ControllerError):
    status = 412
    code = "PreconditionFailed"


class PayloadTooLarge(ControllerError):
    status = 413
    code = "PayloadTooLarge"


class UriTooLong(ControllerError):
    status = 414
    code = "UriTooLong"


class UnsupportedMediaType(ControllerError):
    status = 415
    code = "UnsupportedMediaType"


class TooManyConnections(ControllerError):
    status = 429
    code = "TooManyConnections"


class TooManyFailedLogins(ControllerError):
    status = 429
    code = "TooManyFailedLogins"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RequestHeaderFieldsTooLarge(ControllerError):
    status = 431
    code = "RequestHeaderFieldsTooLarge"


class ServiceUnavailable(ControllerError):
    status = 503
    code = "ServiceUnavailable"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int = 1,
        target: str | None = None,
        details: tuple[ErrorDetail, ...] = (),
    ) -> None:
        super().__init__(message, target=target, details=details)
        self.retry_after = retry_after
