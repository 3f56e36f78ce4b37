"""Why a BFB download failed, as a condition reason a user can act on (DPF issue #29: say why, never just hang).

Every failure of `BfbCache.fetch` is a `BfbFetchError` whose `reason` is one of `FetchReason` and whose message
names the URL and the cause in words. `classify` turns what aiohttp raises into one.
"""

from __future__ import annotations

import asyncio
import errno
import ssl
from enum import StrEnum

import aiohttp
from yarl import URL


class FetchReason(StrEnum):
    """Condition reasons for a failed BFB download (the BFB's Error phase carries one)."""

    DNS_FAILURE = "DNSFailure"  # the host name does not resolve
    CONNECTION_REFUSED = "ConnectionRefused"  # nothing listens on the port
    UNREACHABLE = "Unreachable"  # no route to the host or network
    CONNECTION_LOST = "ConnectionLost"  # connected, then the connection broke (reset, closed mid-body)
    HTTP_ERROR = "HTTPError"  # the server answered with a non-success status
    TLS_ERROR = "TLSError"  # TLS handshake or certificate verification failed
    TIMEOUT = "Timeout"  # no connection, or no data, within the configured time
    CHECKSUM_MISMATCH = "ChecksumMismatch"  # the downloaded bytes are not the expected sha256
    INVALID_URL = "InvalidURL"  # not an http(s) URL with a host
    DISK_ERROR = "DiskError"  # the cache could not write, sync or rename its files
    CANCELLED = "Cancelled"  # the download was stopped by remove() or close() while this caller waited


# Failures worth resuming from inside one fetch, when the attempt moved some bytes first.
RESUMABLE = frozenset({FetchReason.CONNECTION_LOST, FetchReason.TIMEOUT})


class BfbFetchError(Exception):
    """A BFB download failed: `reason` (a FetchReason) for the condition, `message` for people."""

    def __init__(self, reason: FetchReason, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def _where(url: str) -> str:
    try:
        u = URL(url)
        return f"{u.host}:{u.port}" if u.host else url
    except ValueError:
        return url


def http_error(status: int, reason: str | None, url: str) -> BfbFetchError:
    """`HTTP 404 Not Found from <url>`."""
    words = f" {reason}" if reason else ""
    return BfbFetchError(FetchReason.HTTP_ERROR, f"HTTP {status}{words} from {url}")


def disk_error(what: str, path: object, error: OSError) -> BfbFetchError:
    """The cache could not do `what` with `path`."""
    return BfbFetchError(FetchReason.DISK_ERROR, f"cannot {what} {path}: {error.strerror or error}")


def classify(error: BaseException, url: str, *, connect_timeout: float, idle_timeout: float) -> BfbFetchError:
    """The BfbFetchError for an exception raised while talking to the server for `url`."""
    where = _where(url)
    # Order matters: aiohttp's TLS and DNS errors are subclasses of its generic connector error.
    if isinstance(error, BfbFetchError):
        return error
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return BfbFetchError(FetchReason.DNS_FAILURE, f"cannot resolve {URL(url).host!r} for {url}: {_os_cause(error)}")
    if isinstance(error, aiohttp.ClientConnectorCertificateError):
        return BfbFetchError(
            FetchReason.TLS_ERROR, f"TLS certificate of {where} not accepted for {url}: {error.certificate_error}"
        )
    if isinstance(error, (aiohttp.ClientSSLError, ssl.SSLError, aiohttp.ServerFingerprintMismatch)):
        return BfbFetchError(FetchReason.TLS_ERROR, f"TLS handshake with {where} failed for {url}: {_os_cause(error)}")
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return BfbFetchError(FetchReason.TIMEOUT, f"no connection to {where} within {connect_timeout:g}s for {url}")
    if isinstance(error, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return BfbFetchError(FetchReason.TIMEOUT, f"no data from {where} for {idle_timeout:g}s while fetching {url}")
    if isinstance(error, aiohttp.ClientConnectorError):
        cause = error.os_error
        if isinstance(cause, ConnectionRefusedError):
            return BfbFetchError(FetchReason.CONNECTION_REFUSED, f"connection refused by {where} for {url}")
        if isinstance(cause, OSError) and cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return BfbFetchError(FetchReason.UNREACHABLE, f"{where} is unreachable for {url}: {cause.strerror}")
        return BfbFetchError(FetchReason.UNREACHABLE, f"cannot connect to {where} for {url}: {_os_cause(error)}")
    if isinstance(error, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        return BfbFetchError(FetchReason.INVALID_URL, f"invalid URL while fetching {url}: {error}")
    if isinstance(error, aiohttp.TooManyRedirects):
        return BfbFetchError(FetchReason.HTTP_ERROR, f"too many redirects from {url}")
    if isinstance(error, aiohttp.ClientResponseError):
        return http_error(error.status, error.message, url)
    if isinstance(error, (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError)):
        return BfbFetchError(FetchReason.CONNECTION_LOST, f"connection to {where} lost while fetching {url}: {error}")
    return BfbFetchError(FetchReason.CONNECTION_LOST, f"fetching {url} failed: {type(error).__name__}: {error}")


def _os_cause(error: BaseException) -> str:
    cause = getattr(error, "os_error", None)
    if isinstance(cause, OSError):
        return str(cause.strerror or cause)
    return str(error)
