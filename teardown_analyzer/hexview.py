"""The library side of ``teardown-analyze hex``: find a header, decode it, annotate it."""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from typing import Iterator

from .annotate import Row, ip_rows, tcp_rows
from .capture import Batch, Capture, Frame, open_bytes, open_capture
from .errors import CaptureError, UsageError
from .flows import Tracker
from .link import Segment, TcpPacket, locate_tcp, tcp_packet
from .tcp import TcpHeader, decode_tcp, parse_address

_HEX_TOKEN = re.compile(r"(?:0x)?([0-9a-fA-F]+)")


def parse_hex(text: str) -> bytes:
    """Bytes from hex copied out of a document: spaces, newlines, colons, ``0x`` allowed.

    Raises:
        UsageError: anything else in the text, or an odd number of hex digits.
    """
    cleaned = text.replace(":", " ").replace(",", " ").replace("-", " ")
    digits = []
    for token in cleaned.split():
        m = _HEX_TOKEN.fullmatch(token)
        if not m:
            raise UsageError(f"--raw: {token!r} is not hex")
        digits.append(m.group(1))
    joined = "".join(digits)
    if len(joined) % 2:
        raise UsageError(f"--raw: odd number of hex digits ({len(joined)})")
    if not joined:
        raise UsageError("--raw: no hex bytes given")
    return bytes.fromhex(joined)


@dataclass(frozen=True, slots=True)
class Annotated:
    """A decoded header and its rows, with where it came from."""

    header: TcpHeader
    rows: tuple[Row, ...]
    frame: Frame | None = None
    segment: Segment | None = None
    context: list[str] | None = None
    """Flow context lines (capture packets only)."""


def annotate_raw(data: bytes, src: str | None, dst: str | None, lang: str,
                 with_ip: bool = False) -> Annotated:
    """Annotate a TCP header (``with_ip``: an IP header followed by TCP) given as bytes."""
    try:
        s = parse_address(src) if src else None
        d = parse_address(dst) if dst else None
    except ValueError as exc:
        raise UsageError(f"--src/--dst: {exc}") from exc
    if (s is None) != (d is None):
        raise UsageError("--src and --dst go together")
    if s is not None and d is not None and len(s) != len(d):
        raise UsageError("--src and --dst must both be IPv4 or both IPv6")
    if with_ip:
        seg = locate_tcp(data, 101)  # raw IP
        if isinstance(seg, str):
            raise UsageError(f"--raw --with-ip: {seg}")
        return _annotate_segment(data, seg, lang, True)
    hdr = decode_tcp(data, src=s, dst=d)
    return Annotated(hdr, tuple(tcp_rows(data, hdr, lang)))


def _annotate_segment(data: bytes, seg: Segment, lang: str, with_ip: bool,
                      frame: Frame | None = None) -> Annotated:
    tcp = data[seg.tcp_offset:]
    complete = not seg.first_fragment
    hdr = decode_tcp(tcp, src=seg.src if complete else None,
                     dst=seg.dst if complete else None, tcp_len=seg.tcp_len)
    rows = tcp_rows(tcp, hdr, lang)
    if with_ip:
        rows = ip_rows(data[seg.ip_offset:seg.tcp_offset], lang) + rows
    return Annotated(hdr, tuple(rows), frame, seg)


def annotate_packet(path: str, number: int, lang: str, with_ip: bool) -> Annotated:
    """Annotate packet ``number`` (from 1) of a capture (``-``: standard input, read whole),
    with its flow context (:func:`_context`)."""
    if number < 1:
        raise UsageError(f"--packet {number}: packets are numbered from 1")
    if path == "-":
        data = sys.stdin.buffer.read()

        def reopen() -> Capture:
            return open_bytes(data, "<stdin>")
    else:
        def reopen() -> Capture:
            return open_capture(path)
    cap = reopen()
    found = None
    for batch in cap.batches():  # (only the batch that holds it is read packet by packet)
        if batch.first <= number < batch.first + len(batch.starts):
            found = next(f for f in batch.frames() if f.index == number)
            break
    cap.close()
    if found is None:
        if cap.info.error is not None:
            raise cap.info.error
        raise UsageError(f"{cap.info.source}: there is no packet {number} (the capture has "
                         f"{cap.info.packets})")
    seg = locate_tcp(found.data, found.linktype)
    if isinstance(seg, str):
        raise UsageError(f"{cap.info.source}: packet {number} is not a TCP segment we can "
                         f"decode ({seg})")
    result = _annotate_segment(found.data, seg, lang, with_ip, found)
    tcp = tcp_packet(found.data, found.linktype)
    context = [] if isinstance(tcp, str) else \
        _context(reopen(), number, tcp, seg, result.header, lang)
    return Annotated(result.header, result.rows, found, seg, context)


def _context(cap: Capture, number: int, tcp: TcpPacket, seg: Segment, hdr: TcpHeader,
             lang: str) -> list[str]:
    """The flow context of packet ``number`` of ``cap`` (``tcp``): its connection's
    segments (:func:`_mine`) fed to a tracker, the numbers relative to each side's ISN as
    they stand at the packet (:func:`flow_context`), and each side's state after it as
    the whole capture tells it (:func:`_states_after`: the ladder of ``--flow``; a later
    segment, or the capture's end, may show that the packet did not do what it seemed
    to).  Read until the connection can no longer change (a sweep lets it go, as the
    analysis's sweeps do), or to the end of the capture."""
    from .analysis import Options  # (not for --raw: numpy with it)
    ends = _ends(tcp)
    options = Options()
    tw_ns, grace_ns = int(options.time_wait_s * 1e9), int(options.quiet_s * 1e9)
    tracker = Tracker(keep_ladder=True, time_wait_ns=tw_ns, grace_ns=grace_ns)
    context: list[str] = []
    for batch in cap.batches():
        for packet, ts, mine in _mine(batch, tcp):
            tracker.feed(packet, ts, mine)
            if packet == number:
                context = flow_context(tracker, seg, hdr, lang, number)
                if not context:
                    cap.close()
                    return []
        tracker.sweep(int(batch.ts_ns[-1]), tw_ns, grace_ns)
        if context and any(set(c.addrs) == ends and c.id <= number for c in tracker.finished):
            break
    cap.close()
    if context:
        context[-1] = _states_after(tracker, ends, number, cap.info.end_ns, lang) \
            or context[-1]
    return context


def _ends(tcp: TcpPacket) -> set[tuple[bytes, int]]:
    """The two endpoints (address, port) of a segment, either way round."""
    return {(tcp[1], tcp[5]), (tcp[2], tcp[6])}


def _mine(batch: Batch, tcp: TcpPacket) -> Iterator[tuple[int, int, TcpPacket]]:
    """The records of ``batch`` that are segments of the connection of ``tcp`` (either
    way), as the tracker takes them: picked out of the batch's gathered columns at once
    (:func:`~teardown_analyzer.columnar.gathered`), or, in a batch that cannot be
    gathered, decoded one by one."""
    import numpy as np
    from .columnar import gathered, records
    version, (a, a_port), (b, b_port) = tcp[0], (tcp[1], tcp[5]), (tcp[2], tcp[6])
    cols = gathered(batch, (0, 1), lambda reason: None)
    if cols is None:
        ends = _ends(tcp)
        for frame in batch.frames():
            seg = tcp_packet(frame.data, frame.linktype)
            if not isinstance(seg, str) and _ends(seg) == ends:
                yield frame.index, frame.ts_ns, seg
        return
    key = cols["key"]
    mine = np.zeros(len(key), bool)
    for (x, x_port), (y, y_port) in (((a, a_port), (b, b_port)), ((b, b_port), (a, a_port))):
        mine |= (key == np.frombuffer(bytes([version]) + x.ljust(16, b"\0")
                                      + x_port.to_bytes(2, "big") + y.ljust(16, b"\0")
                                      + y_port.to_bytes(2, "big"), np.uint8)).all(1)
    yield from records(cols, np.flatnonzero(mine))


def _states_after(tracker: Tracker, ends: set[tuple[bytes, int]], number: int, end_ns: int,
                  lang: str) -> str | None:
    """The line of :func:`flow_context` on each side's state after packet ``number`` (of
    the connection between ``ends``), as the summary of its connection has it once the
    capture has ended (at ``end_ns``): at the packet's step of its ladder, or the last
    step before it (a plain data segment of an open connection has none, and changes no
    state); None if it has none."""
    from .analysis import Options, summarize
    # (the packet's incarnation of the 4-tuple: the last to begin at or before it, unless
    # the one before it has the packet in its ladder, as it has the answers to a new SYN
    # that came after that SYN)
    latest = sorted((c for c in tracker.finish(end_ns) if set(c.addrs) == ends
                     and c.id <= number), key=lambda c: c.id)[-2:]
    ladders = [summarize(c, end_ns, Options(keep_ladder=True)).ladder for c in reversed(latest)]
    ladder = next((steps for steps in ladders if any(st["packet"] == number for st in steps)),
                  ladders[0] if ladders else [])
    steps = [step for step in ladder if step["packet"] <= number]
    if not steps:
        return None
    states = steps[-1]["states"]
    return _CTX[lang]["states"].format(c=states["client"] or "—", s=states["server"] or "—")


_CTX = {
    "en": {
        "conn": "connection {id}: {client} (client) -> {server} (server); this packet goes "
                "from the {frm} to the {to}",
        "seq": "relative seq {rel} (seq 0x{seq:08x} - the {frm}'s ISN 0x{isn:08x})",
        "ack": "relative ack {rel}: ack 0x{ack:08x} = the {to}'s ISN 0x{isn:08x} + {rel} "
               "({why})",
        "syn": "the SYN consumes one sequence number",
        "data": "{n} bytes of data",
        "fin": "the FIN consumes one sequence number",
        "states": "after this packet: client {c}, server {s} (as seen at the capture point)",
        "noisn": "the {who}'s ISN was not captured: no relative numbers",
    },
    "zh": {
        "conn": "连接{id}: {client}(客户端) -> {server}(服务端); 本报文由{frm}发往{to}",
        "seq": "相对序号 {rel}(序号0x{seq:08x} - {frm}的初始序号0x{isn:08x})",
        "ack": "相对确认序号 {rel}: 0x{ack:08x} = {to}的初始序号0x{isn:08x} + {rel}({why})",
        "syn": "SYN占一个序号",
        "data": "{n}字节数据",
        "fin": "FIN占一个序号",
        "states": "本报文之后: 客户端 {c}, 服务端 {s}(以抓包点所见)",
        "noisn": "未抓到{who}的初始序号, 无相对序号",
    },
}
_ROLE = {"en": {"client": "client", "server": "server"}, "zh": {"client": "客户端", "server": "服务端"}}


def flow_context(tracker: Tracker, seg: Segment, hdr: TcpHeader, lang: str,
                 number: int) -> list[str]:
    """What the write-up adds below a header, packet ``number`` just fed to ``tracker``:
    relative numbers, what the ACK covers, states."""
    v = hdr.values
    if "window" not in v:
        return []
    found = tracker.conns.get((seg.src, v["src_port"], seg.dst, v["dst_port"]))
    if found is None:
        return []
    conn, s = found
    # (an answer to a new SYN on the 4-tuple is the incarnation before's, which took it:
    # still waiting beside the new one, or finished by it; its ladder ends with the packet)
    for old in (conn.pending_old, *tracker.finished[-2:]):
        if old is not None and old is not conn and set(old.addrs) == set(conn.addrs) \
                and old.ladder and old.ladder[-1].packet == number:
            conn, s = old, s if old.addrs[0] == conn.addrs[0] else 1 - s
            break
    text, names = _CTX[lang], _ROLE[lang]
    ci = conn.client if conn.client is not None else 0
    role = {ci: "client", 1 - ci: "server"}
    frm, to = role[s], role[1 - s]

    def ep(i: int) -> str:
        ip = str(ipaddress.ip_address(conn.addrs[i][0]))
        return f"{ip}:{conn.addrs[i][1]}"

    out = [text["conn"].format(id=conn.id, client=ep(ci), server=ep(1 - ci),
                               frm=names[frm], to=names[to])]
    isn_s, isn_r = conn.dirs[s].isn, conn.dirs[1 - s].isn
    if isn_s is None:
        out.append(text["noisn"].format(who=names[frm]))
    else:
        out.append(text["seq"].format(rel=(v["seq"] - isn_s) & 0xFFFFFFFF, seq=v["seq"],
                                      isn=isn_s, frm=names[frm]))
    if v.get("ACK") and isn_r is not None:
        rel = (v["ack"] - isn_r) & 0xFFFFFFFF
        peer = conn.dirs[1 - s]
        fin = peer.fin_seq is not None and rel == ((peer.fin_seq - isn_r) & 0xFFFFFFFF) + 1
        data = rel - 1 - (1 if fin else 0)
        why = [text["syn"]]
        if data > 0:
            why.append(text["data"].format(n=data))
        if fin:
            why.append(text["fin"])
        out.append(text["ack"].format(rel=rel, ack=v["ack"], isn=isn_r, to=names[to],
                                      why=", ".join(why) if lang == "en" else "; ".join(why)))
    out.append(text["states"].format(c=conn.sides[ci].state.value,
                                     s=conn.sides[1 - ci].state.value))
    return out


__all__ = ["parse_hex", "annotate_raw", "annotate_packet", "Annotated", "CaptureError"]
