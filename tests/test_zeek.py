"""zeek_state by Zeek's documented conn_state definitions, on hand-built segment sequences."""

from __future__ import annotations

import struct

import pytest

from teardown_analyzer.analysis import Options, summarize
from teardown_analyzer.flows import Tracker
from teardown_analyzer.link import tcp_packet

C, S = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])
F, SY, R, P, A = 0x01, 0x02, 0x04, 0x08, 0x10


def seg(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIHHHH", sport, dport, seq, ack, (5 << 12) | flags, 512, 0, 0)
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + len(payload), 0, 0, 64, 6, 0, src,
                       dst) + tcp + payload


def c2s(seq, ack, flags, data=b""):
    return seg(C, S, 40000, 80, seq, ack, flags, data)


def s2c(seq, ack, flags, data=b""):
    return seg(S, C, 80, 40000, seq, ack, flags, data)


HS = [c2s(100, 0, SY), s2c(500, 101, SY | A), c2s(101, 501, A)]

CASES = {
    "S0": [c2s(100, 0, SY)],
    "REJ": [c2s(100, 0, SY), s2c(0, 101, R | A)],
    "RSTOS0": [c2s(100, 0, SY), c2s(101, 0, R)],
    "SH": [c2s(100, 0, SY), c2s(101, 0, F | A)],
    "SHR": [s2c(500, 101, SY | A), s2c(501, 101, F | A)],
    "RSTRH": [s2c(500, 101, SY | A), s2c(501, 0, R)],
    "S1": HS + [c2s(101, 501, P | A, b"x" * 10)],
    "SF": HS + [c2s(101, 501, F | A), s2c(501, 102, F | A), c2s(102, 502, A)],
    "S2": HS + [c2s(101, 501, F | A), s2c(501, 102, A)],
    "S3": HS + [s2c(501, 101, F | A), c2s(101, 502, A)],
    "RSTO": HS + [c2s(101, 501, R | A)],
    "RSTR": HS + [s2c(501, 101, R | A)],
    "OTH": [c2s(101, 501, P | A, b"x" * 10), s2c(501, 111, A)],
}


@pytest.mark.parametrize("expected", sorted(CASES))
def test_zeek_conn_state(expected):
    tracker = Tracker()
    for i, pkt in enumerate(CASES[expected], 1):
        where = tcp_packet(pkt, 101)
        assert not isinstance(where, str)
        tracker.feed(i, i * 1_000_000, where)
    (conn,) = tracker.finish()
    assert summarize(conn, 10**9, Options()).zeek_state == expected
