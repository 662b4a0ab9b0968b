"""Write sample_pcaps/writeup_reconstructed.pcap: a RECONSTRUCTION, not a capture.

It rebuilds the experiment of the write-up ../shared/seeds/003_*.txt (a client on
172.16.48.13:32806 sends 22 bytes to a server on 172.16.48.1:5002, closes; the server
ACKs the FIN, closes much later; the client ACKs).  Packets 6 and 7 carry, byte for
byte, the two TCP headers the write-up prints (the client's FIN and the server's
ACK); the script checks that their checksums still verify.  Everything else is
chosen to be consistent with them and is documented in sample_pcaps/README.md:
the client's ISN (1979 = 0x7d2 - 22 - 1), the timestamps of the packets the
write-up does not show, the capture times, IP identification numbers, and the
raw-IP link type (the write-up stripped the Ethernet header, so none is invented).

    python3 tools/reconstruct_writeup.py
"""

from __future__ import annotations

import pathlib
import socket
import struct

OUT = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps" / "writeup_reconstructed.pcap"

CLIENT = ("172.16.48.13", 32806)
SERVER = ("172.16.48.1", 5002)
CLIENT_ISN = 0x7D2 - 22 - 1       # the FIN's seq 0x7d2 follows SYN + 22 bytes
SERVER_ISN = 0x7E08BA9F           # stated in the write-up
PAYLOAD = b"my first tcp packet!/n"  # the string the client program sends (22 bytes)
assert len(PAYLOAD) == 22

FIN_HEADER = bytes.fromhex("8026138a000007d27e08baa0801105b49e1c00000101080a00007edb0085c730")
ACK_HEADER = bytes.fromhex("138a80267e08baa0000007d3801005a89dff00000101080a0085c75900007edb")


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def tcp(src, dst, seq, ack, flags, window, opts=b"", payload=b""):
    while len(opts) % 4:
        opts += b"\x01"
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, off << 4, flags, window, 0, 0)
    seg = hdr + opts + payload
    ph = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!BBH", 0, 6, len(seg))
    c = 0xFFFF - csum(ph + seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def ip(src, dst, ident, segment):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident, 0x4000, 64, 6, 0,
                      socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    c = 0xFFFF - csum(hdr)
    return hdr[:10] + struct.pack("!H", c) + hdr[12:] + segment


def ts(tsval, tsecr):
    return b"\x01\x01\x08\x0a" + struct.pack("!II", tsval, tsecr)


SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08
MSS = b"\x02\x04\x05\xb4"
SACKOK_TS = b"\x04\x02\x08\x0a"

C, S = CLIENT, SERVER
T0 = 1262332800_000000  # 2010-01-01T08:00:00Z, in microseconds (the write-up is undated)
packets = [
    # (time offset in microseconds, sender, receiver, ip id, tcp segment)
    (0, C, S, 0x1a2b, tcp(C, S, CLIENT_ISN, 0, SYN, 5840,
                          MSS + SACKOK_TS + struct.pack("!II", 32470, 0) + b"\x01\x03\x03\x00")),
    (410, S, C, 0x0000, tcp(S, C, SERVER_ISN, CLIENT_ISN + 1, SYN | ACK, 5792,
                            MSS + SACKOK_TS + struct.pack("!II", 8767276, 32470)
                            + b"\x01\x03\x03\x00")),
    (620, C, S, 0x1a2c, tcp(C, S, CLIENT_ISN + 1, SERVER_ISN + 1, ACK, 1460,
                            ts(32471, 8767276))),
    (900, C, S, 0x1a2d, tcp(C, S, CLIENT_ISN + 1, SERVER_ISN + 1, PSH | ACK, 1460,
                            ts(32471, 8767276), PAYLOAD)),
    (1300, S, C, 0x0001, tcp(S, C, SERVER_ISN + 1, CLIENT_ISN + 1 + 22, ACK, 1448,
                             ts(8767277, 32471))),
    (4_100, C, S, 0x1a2e, FIN_HEADER),   # the write-up's first table
    (45_300, S, C, 0x0002, ACK_HEADER),  # the write-up's second table (41 ms later by TSval)
    # The server's process is stopped by hand much later: its FIN, then the last ACK.
    (12_045_600, S, C, 0x0003, tcp(S, C, SERVER_ISN + 1, CLIENT_ISN + 1 + 22 + 1, FIN | ACK,
                                   1448, ts(8779321, 32475))),
    (12_046_000, C, S, 0x0000, tcp(C, S, CLIENT_ISN + 1 + 22 + 1, SERVER_ISN + 2, ACK, 1460,
                                   ts(44475, 8779321))),
]


def main() -> None:
    for i, hdr in ((5, FIN_HEADER), (6, ACK_HEADER)):
        _, src, dst, _, seg = packets[i]
        ph = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!BBH", 0, 6, len(seg))
        assert seg == hdr and csum(ph + seg) == 0xFFFF, f"packet {i + 1}: document checksum"
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
    for offset, src, dst, ident, seg in packets:
        pkt = ip(src, dst, ident, seg)
        t = T0 + offset
        out += struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(pkt), len(pkt)) + pkt
    OUT.write_bytes(bytes(out))
    print(f"wrote {OUT} ({len(packets)} packets)")


if __name__ == "__main__":
    main()
