"""Refusals of the admin API, each with the gRPC status code it is answered with and a message for one line."""

from __future__ import annotations

import grpc


class AdminError(Exception):
    code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(AdminError):
    code = grpc.StatusCode.NOT_FOUND


class Precondition(AdminError):
    """The request does not apply to this daemon or object now."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class InvalidArgument(AdminError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Unavailable(AdminError):
    """A part the answer needs has not started yet (or has stopped)."""

    code = grpc.StatusCode.UNAVAILABLE
