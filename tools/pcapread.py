"""Minimal, stdlib-only pcap / pcapng reader and writer for the sample generator
and its tests.

Only what the sample captures need: classic pcap (micro- and nanosecond, either
byte order), pcapng (SHB/IDB/EPB/SPB, if_tsresol), and the link types
EN10MB (with 802.1Q/802.1ad tags), LINUX_SLL, LINUX_SLL2, RAW/IPV4/IPV6 and
NULL/LOOP.  TCP over IPv4 and IPv6 is decoded; everything else is skipped.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


@dataclass
class Record:
    ts: float          # seconds, float
    ts_ns: int         # integer nanoseconds since the epoch
    caplen: int
    origlen: int
    data: bytes
    linktype: int
    ifid: int = 0


@dataclass
class Capture:
    fmt: str                      # "pcap" | "pcapng"
    linktypes: list               # per interface (one for classic pcap)
    snaplen: int
    nanosecond: bool
    records: list = field(default_factory=list)
    magic: int = 0
    stopped: list = field(default_factory=list)  # pcapng: each statistics block's isb_endtime, raw


@dataclass
class TcpPkt:
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    plen: int
    win: int
    vlan: list
    ipver: int
    ttl: int
    index: int

    @property
    def syn(self):
        return bool(self.flags & SYN)

    @property
    def fin(self):
        return bool(self.flags & FIN)

    @property
    def rst(self):
        return bool(self.flags & RST)

    @property
    def has_ack(self):
        return bool(self.flags & ACK)

    def flagstr(self):
        s = ""
        for bit, ch in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"), (ACK, "."), (URG, "U")):
            if self.flags & bit:
                s += ch
        return s


def read_capture(path) -> Capture:
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 24:
        raise ValueError(f"{path}: too short for a capture file")
    if buf[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(buf)
    return _read_pcap(buf)


def _read_pcap(buf: bytes) -> Capture:
    magic_le = struct.unpack("<I", buf[:4])[0]
    if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    elif struct.unpack(">I", buf[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D):
        e = ">"
    else:
        raise ValueError("not a pcap file")
    magic, _vmaj, _vmin, _tz, _sig, snaplen, network = struct.unpack(e + "IHHiIII", buf[:24])
    nano = magic == 0xA1B23C4D
    lt = network & 0x0FFFFFFF
    cap = Capture("pcap", [lt], snaplen, nano, magic=magic)
    off = 24
    while off + 16 <= len(buf):
        sec, frac, incl, orig = struct.unpack(e + "IIII", buf[off:off + 16])
        off += 16
        data = buf[off:off + incl]
        off += incl
        ts_ns = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        cap.records.append(Record(ts_ns / 1e9, ts_ns, incl, orig, data, lt))
    return cap


def _read_pcapng(buf: bytes) -> Capture:
    off = 0
    e = "<"
    ifaces = []  # (linktype, tsresol_ns_per_unit as (num, den))
    cap = Capture("pcapng", [], 0, False)
    while off + 12 <= len(buf):
        btype = struct.unpack(e + "I", buf[off:off + 4])[0]
        if btype == 0x0A0D0D0A:
            bom = buf[off + 8:off + 12]
            e = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            ifaces = []
        btype, blen = struct.unpack(e + "II", buf[off:off + 8])
        if blen < 12 or off + blen > len(buf):
            break
        body = buf[off + 8:off + blen - 4]
        if btype == 1:  # IDB
            lt, _res, snap = struct.unpack(e + "HHI", body[:8])
            units = 1_000_000  # default microseconds
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(e + "HH", body[o:o + 4])
                if code == 0:
                    break
                val = body[o + 4:o + 4 + olen]
                if code == 9 and olen >= 1:
                    v = val[0]
                    units = (2 ** (v & 0x7F)) if v & 0x80 else (10 ** v)
                o += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, units))
            cap.linktypes.append(lt)
            cap.snaplen = max(cap.snaplen, snap)
            if units >= 1_000_000_000:
                cap.nanosecond = True
        elif btype == 6:  # EPB
            ifid, th, tl, incl, orig = struct.unpack(e + "IIIII", body[:20])
            data = body[20:20 + incl]
            lt, units = ifaces[ifid]
            t = (th << 32) | tl
            ts_ns = t * 1_000_000_000 // units
            cap.records.append(Record(ts_ns / 1e9, ts_ns, incl, orig, data, lt, ifid))
        elif btype == 5:  # ISB: interface id, time, options; isb_endtime (3) is two 32-bit words
            o = 12
            while o + 4 <= len(body):
                code, olen = struct.unpack(e + "HH", body[o:o + 4])
                if code == 0:
                    break
                if code == 3 and olen == 8:
                    hi, lo = struct.unpack(e + "II", body[o + 4:o + 12])
                    cap.stopped.append((hi << 32) | lo)
                o += 4 + ((olen + 3) & ~3)
        elif btype == 3:  # SPB (no timestamp)
            orig = struct.unpack(e + "I", body[:4])[0]
            lt, _ = ifaces[0]
            data = body[4:4 + min(orig, cap.snaplen or orig)]
            cap.records.append(Record(0.0, 0, len(data), orig, data, lt, 0))
        off += blen
    return cap


def _strip_link(lt: int, data: bytes):
    """Return (ethertype-or-version, l3 bytes, vlan tags)."""
    vlans = []
    if lt == LINKTYPE_ETHERNET:
        if len(data) < 14:
            return None, b"", vlans
        et = struct.unpack("!H", data[12:14])[0]
        o = 14
        while et in (0x8100, 0x88A8, 0x9100) and len(data) >= o + 4:
            tci, et = struct.unpack("!HH", data[o:o + 4])
            vlans.append(tci & 0x0FFF)
            o += 4
        return et, data[o:], vlans
    if lt == LINKTYPE_LINUX_SLL:
        if len(data) < 16:
            return None, b"", vlans
        et = struct.unpack("!H", data[14:16])[0]
        return et, data[16:], vlans
    if lt == LINKTYPE_LINUX_SLL2:
        if len(data) < 20:
            return None, b"", vlans
        et = struct.unpack("!H", data[0:2])[0]
        return et, data[20:], vlans
    if lt in (LINKTYPE_RAW, 12, 14, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            return None, b"", vlans
        v = data[0] >> 4
        return (0x0800 if v == 4 else 0x86DD if v == 6 else None), data, vlans
    if lt in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            return None, b"", vlans
        fam = struct.unpack("<I", data[:4])[0]
        if fam > 0xFFFF:
            fam = struct.unpack(">I", data[:4])[0]
        return (0x0800 if fam == 2 else 0x86DD if fam in (10, 24, 28, 30) else None), data[4:], vlans
    return None, b"", vlans


def decode_tcp(rec: Record, index: int = 0):
    et, l3, vlans = _strip_link(rec.linktype, rec.data)
    if et == 0x0800 and len(l3) >= 20 and l3[0] >> 4 == 4:
        ihl = (l3[0] & 0x0F) * 4
        tot = struct.unpack("!H", l3[2:4])[0]
        ttl = l3[8]
        if l3[9] != 6:
            return None
        src = str(ipaddress.IPv4Address(l3[12:16]))
        dst = str(ipaddress.IPv4Address(l3[16:20]))
        seg = l3[ihl:tot] if tot >= ihl else l3[ihl:]
        wire = tot - ihl if tot >= ihl else len(seg)  # (all of it, if the capture cut it short)
        ver = 4
    elif et == 0x86DD and len(l3) >= 40 and l3[0] >> 4 == 6:
        plen = struct.unpack("!H", l3[4:6])[0]
        nh = l3[6]
        ttl = l3[7]
        src = str(ipaddress.IPv6Address(l3[8:24]))
        dst = str(ipaddress.IPv6Address(l3[24:40]))
        rest = l3[40:40 + plen]
        while nh in (0, 43, 60) and len(rest) >= 8:  # hop-by-hop, routing, dest opts
            nh, hl = rest[0], (rest[1] + 1) * 8
            rest = rest[hl:]
        if nh != 6:
            return None
        seg = rest
        wire = plen - (len(l3[40:40 + plen]) - len(rest))
        ver = 6
    else:
        return None
    if len(seg) < 20:
        return None
    sport, dport, seq, ack, offfl, win = struct.unpack("!HHIIHH", seg[:16])
    doff = (offfl >> 12) * 4
    flags = offfl & 0x3F
    return TcpPkt(rec.ts, src, dst, sport, dport, flags, seq, ack, max(0, wire - doff),
                  win, vlans, ver, ttl, index)


def tcp_packets(path):
    cap = read_capture(path)
    out = []
    for i, r in enumerate(cap.records):
        p = decode_tcp(r, i)
        if p is not None:
            out.append(p)
    return out


# ---------------------------------------------------------------- writers

def write_pcap(path, linktype: int, snaplen: int, records, nanosecond=False):
    with open(path, "wb") as f:
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for r in records:
            sec, ns = divmod(r.ts_ns, 1_000_000_000)
            frac = ns if nanosecond else ns // 1000
            f.write(struct.pack("<IIII", sec, frac, len(r.data), r.origlen))
            f.write(r.data)


def _opt(code: int, val: bytes) -> bytes:
    pad = (4 - len(val) % 4) % 4
    return struct.pack("<HH", code, len(val)) + val + b"\0" * pad


def _block(btype: int, body: bytes) -> bytes:
    blen = 12 + len(body)
    return struct.pack("<II", btype, blen) + body + struct.pack("<I", blen)


def write_pcapng(path, interfaces, records, shb_comment=None, tsresol=6):
    """interfaces: list of dicts {linktype, snaplen, name, description}.
    records: Record objects (ifid picks the interface)."""
    units = 10 ** tsresol
    with open(path, "wb") as f:
        opts = b""
        if shb_comment:
            opts += _opt(1, shb_comment.encode())
        opts += _opt(4, b"teardown-analyzer tools/gen_samples.py")
        if opts:
            opts += _opt(0, b"")
        f.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts))
        for itf in interfaces:
            o = b""
            if itf.get("name"):
                o += _opt(2, itf["name"].encode())
            if itf.get("description"):
                o += _opt(3, itf["description"].encode())
            o += _opt(9, bytes([tsresol]))
            o += _opt(0, b"")
            f.write(_block(1, struct.pack("<HHI", itf["linktype"], 0, itf.get("snaplen", 262144)) + o))
        for r in records:
            t = r.ts_ns * units // 1_000_000_000
            pad = (4 - len(r.data) % 4) % 4
            body = struct.pack("<IIIII", r.ifid, t >> 32, t & 0xFFFFFFFF, len(r.data), r.origlen)
            f.write(_block(6, body + r.data + b"\0" * pad))
