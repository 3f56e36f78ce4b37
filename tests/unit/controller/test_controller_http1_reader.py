"""AnswerReader: HTTP/1.x answers fed whole or a byte at a time, in every framing the API server may use."""

from __future__ import annotations

import pytest

from controller.kube.http1 import AnswerReader, BadAnswer


def feed_bytewise(reader: AnswerReader, data: bytes) -> int:
    """Feed one byte at a time; return how many bytes it took to complete the answer (0: not complete)."""
    for i in range(len(data)):
        if reader.feed(data[i : i + 1]):
            return i + 1
    return 0


LENGTH = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"a": [1]}\n'
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
)


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [(LENGTH, 200, b'{"a": [1]}\n'), (CHUNKED, 201, b"hello world")],
)
def test_whole_and_bytewise_give_the_same_answer(raw: bytes, status: int, body: bytes) -> None:
    whole = AnswerReader()
    assert whole.feed(raw)
    assert (whole.status, whole.body, whole.keep_alive) == (status, body, True)
    bytewise = AnswerReader()
    assert feed_bytewise(bytewise, raw) == len(raw)  # complete exactly at the last byte, not before
    assert (bytewise.status, bytewise.body, bytewise.keep_alive) == (status, body, True)


def test_informational_answers_are_skipped() -> None:
    reader = AnswerReader()
    assert reader.feed(b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH)
    assert reader.status == 200 and reader.body == b'{"a": [1]}\n'


def test_body_until_close_ends_with_the_connection() -> None:
    reader = AnswerReader()
    assert not reader.feed(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
    assert not reader.feed(b"part two")
    assert reader.feed_eof()
    assert reader.body == b"part one, part two" and not reader.keep_alive


def test_eof_before_the_declared_length_is_not_an_answer() -> None:
    reader = AnswerReader()
    assert not reader.feed(LENGTH[:-3])
    assert not reader.feed_eof()


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.1 204 No Content\r\n\r\n", True),
    ],
)
def test_connection_reuse_follows_the_headers(head: bytes, keep_alive: bool) -> None:
    reader = AnswerReader()
    assert reader.feed(head)
    assert reader.keep_alive is keep_alive and reader.body == b""


def test_head_answers_have_no_body_whatever_their_length() -> None:
    reader = AnswerReader(head_only=True)
    assert reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
    assert reader.body == b""


def test_bytes_beyond_the_answer_forbid_reusing_the_connection() -> None:
    reader = AnswerReader()
    assert reader.feed(LENGTH + b"HTTP/1.1 200 OK\r\n")
    assert not reader.keep_alive


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n", "not followed by CRLF"),
    ],
)
def test_unreadable_answers_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(BadAnswer, match=message):
        AnswerReader().feed(raw)
