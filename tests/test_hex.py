"""`hex` pinned on the write-up's two headers (../shared/seeds/003_*.txt), field for field."""

from __future__ import annotations

import json
import pathlib

import pytest

from teardown_analyzer.annotate import tcp_rows
from teardown_analyzer.tcp import CHECKSUM_BAD, CHECKSUM_OK, decode_tcp, parse_address

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"

# The write-up's tables, as printed there ("数据内容" column), Ethernet and IP stripped.
CLIENT_FIN = ("80 26 13 8a 00 00 07 d2 7e 08 ba a0 80 11 05 b4 9e 1c 00 00 "
              "01 01 08 0a 00 00 7e db 00 85 c7 30")
SERVER_ACK = ("13 8a 80 26 7e 08 ba a0 00 00 07 d3 80 10 05 a8 9d ff 00 00 "
              "01 01 08 0a 00 85 c7 59 00 00 7e db")
C, S = "172.16.48.13", "172.16.48.1"

# (bytes as the write-up shows them, Chinese label, value) for every row of each table.
FIN_ROWS = [
    ("80 26", "16位源端口号", "32806"),
    ("13 8a", "16位目的端口号", "5002"),
    ("00 00 07 d2", "32位序号", "0x000007d2"),
    ("7e 08 ba a0", "32位确认序号", "0x7e08baa0"),
    ("8", "首部长度", "8"),
    ("0 11", "标志位", "0x011"),
    ("05 b4", "16位窗口大小", "1460"),
    ("9e 1c", "16位校验和", "0x9e1c"),
    ("00 00", "16位紧急指针", "0"),
    ("01", "填充", ""),
    ("01", "填充", ""),
    ("08 0a 00 00 7e db 00 85 c7 30", "时间戳",
     "TSval 32475 (0x00007edb), TSecr 8767280 (0x0085c730)"),
]
ACK_ROWS = [
    ("13 8a", "16位源端口号", "5002"),
    ("80 26", "16位目的端口号", "32806"),
    ("7e 08 ba a0", "32位序号", "0x7e08baa0"),
    ("00 00 07 d3", "32位确认序号", "0x000007d3"),
    ("8", "首部长度", "8"),
    ("0 10", "标志位", "0x010"),
    ("05 a8", "16位窗口大小", "1448"),
    ("9d ff", "16位校验和", "0x9dff"),
    ("00 00", "16位紧急指针", "0"),
    ("01", "填充", ""),
    ("01", "填充", ""),
    ("08 0a 00 85 c7 59 00 00 7e db", "时间戳",
     "TSval 8767321 (0x0085c759), TSecr 32475 (0x00007edb)"),
]


def _json_rows(run_cli, raw: str, src: str, dst: str, lang: str) -> list[dict]:
    code, out, err = run_cli("hex", "--raw", raw, "--src", src, "--dst", dst,
                             "--format", "json", "--lang", lang)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("raw,src,dst,expected", [
    (CLIENT_FIN, C, S, FIN_ROWS), (SERVER_ACK, S, C, ACK_ROWS)], ids=["client-FIN", "server-ACK"])
def test_writeup_tables_zh(run_cli, raw, src, dst, expected):
    rows = _json_rows(run_cli, raw, src, dst, "zh")
    assert [(r["bytes"], r["label"], r["value"]) for r in rows] == expected
    meaning = {r["field"]: r["meaning"] for r in rows}
    assert meaning["data_offset"] == "8*4=32字节"          # the write-up's "(8*4=32)"
    assert meaning["checksum"] == "正确"
    assert meaning["flags"] == ("ACK=1, FIN=1" if raw == CLIENT_FIN else "ACK=1")
    assert [r["meaning"] for r in rows if r["field"] == "nop"] == ["填充", "填充"]


def test_writeup_fin_en(run_cli):
    rows = _json_rows(run_cli, CLIENT_FIN, C, S, "en")
    by = {r["field"]: r for r in rows}
    assert by["src_port"]["value"] == "32806" and by["dst_port"]["value"] == "5002"
    assert by["src_port"]["offset"] == 0 and by["src_port"]["length"] == 2
    assert by["seq"]["value"] == "0x000007d2"
    assert by["ack"]["value"] == "0x7e08baa0"
    assert by["data_offset"]["meaning"] == "8 × 4 = 32 bytes"
    assert by["flags"]["meaning"] == "ACK, FIN"
    assert by["window"]["value"] == "1460"
    assert (by["checksum"]["value"], by["checksum"]["meaning"]) == ("0x9e1c", "correct")
    assert by["urgent_pointer"]["value"] == "0"
    assert by["timestamps"]["value"] == "TSval 32475 (0x00007edb), TSecr 8767280 (0x0085c730)"
    assert by["timestamps"]["offset"] == 22 and by["timestamps"]["length"] == 10


def test_writeup_ack_en(run_cli):
    by = {r["field"]: r for r in _json_rows(run_cli, SERVER_ACK, S, C, "en")}
    assert by["window"]["value"] == "1448"
    assert (by["checksum"]["value"], by["checksum"]["meaning"]) == ("0x9dff", "correct")
    assert by["flags"]["meaning"] == "ACK"


@pytest.mark.parametrize("lang,word", [("en", "incorrect, expected 0x9e1c"), ("zh", "错误, 应为0x9e1c")])
def test_corrupted_checksum_reported_bad(run_cli, lang, word):
    corrupted = CLIENT_FIN.replace("05 b4 9e 1c", "05 b4 9e 1d")
    by = {r["field"]: r for r in _json_rows(run_cli, corrupted, C, S, lang)}
    assert by["checksum"]["value"] == "0x9e1d"
    assert by["checksum"]["meaning"].startswith(word)


def test_checksum_needs_addresses():
    hdr = decode_tcp(bytes.fromhex(CLIENT_FIN))
    assert hdr.checksum_status.startswith("unverifiable")
    hdr = decode_tcp(bytes.fromhex(CLIENT_FIN), src=parse_address(C), dst=parse_address(S))
    assert hdr.checksum_status == CHECKSUM_OK
    swapped = decode_tcp(bytes.fromhex(CLIENT_FIN), src=parse_address(S), dst=parse_address(C))
    assert swapped.checksum_status == CHECKSUM_OK  # the sum is symmetric in src/dst
    wrong = decode_tcp(bytes.fromhex(CLIENT_FIN), src=parse_address(C),
                       dst=parse_address("172.16.48.2"))
    assert wrong.checksum_status == CHECKSUM_BAD


def test_raw_accepts_document_spellings(run_cli):
    spelled = "0x80:0x26 13:8a\n00 00 07 d2 7e08baa0 80 11 05 b4 9e 1c 00 00 01 01 08 0a 00 00 7e db 00 85 c7 30"
    assert _json_rows(run_cli, spelled, C, S, "en") == _json_rows(run_cli, CLIENT_FIN, C, S, "en")


def test_raw_usage_errors(run_cli):
    code, out, err = run_cli("hex", "--raw", "80 2g")
    assert code == 2 and "not hex" in err and err.count("\n") == 1
    code, _, err = run_cli("hex", "--raw", CLIENT_FIN, "--src", C)
    assert code == 2 and "--src and --dst go together" in err
    code, _, err = run_cli("hex")
    assert code == 2


def test_packet_from_capture_matches_the_document(run_cli):
    """Packet 6 of the reconstruction holds the write-up's FIN byte for byte."""
    code, out, err = run_cli("hex", str(SAMPLES / "writeup_reconstructed.pcap"), "--packet", "6",
                             "--format", "json")
    assert code == 0, err
    assert " ".join(r["bytes"] for r in json.loads(out)).replace(" ", "") == \
        "".join(b for b, _, _ in FIN_ROWS).replace(" ", "")
    code, out, err = run_cli("hex", str(SAMPLES / "writeup_reconstructed.pcap"), "--packet", "7",
                             "--format", "json", "--lang", "zh")
    assert [(r["bytes"], r["label"], r["value"]) for r in json.loads(out)] == ACK_ROWS


def test_with_ip_rows(run_cli):
    code, out, _ = run_cli("hex", str(SAMPLES / "writeup_reconstructed.pcap"), "--packet", "6",
                           "--with-ip", "--format", "json")
    rows = json.loads(out)
    ip = {r["field"]: r for r in rows if r["section"] == "ip"}
    assert ip["src"]["value"] == C and ip["dst"]["value"] == S
    assert ip["protocol"]["value"] == "6" and ip["header_checksum"]["meaning"] == "correct"
    assert rows[len(ip)]["field"] == "src_port"


def test_packet_out_of_range(run_cli):
    code, _, err = run_cli("hex", str(SAMPLES / "writeup_reconstructed.pcap"), "--packet", "99")
    assert code == 2 and "no packet 99" in err and "has 9" in err


@pytest.mark.parametrize("fmt,marker", [("markdown", "| `80 26` |"), ("svg", "<svg"),
                                        ("table", "32806")])
def test_formats(run_cli, monkeypatch, fmt, marker):
    monkeypatch.setenv("COLUMNS", "160")
    code, out, _ = run_cli("hex", "--raw", CLIENT_FIN, "--src", C, "--dst", S, "--format", fmt,
                           "--lang", "zh")
    assert code == 0 and marker in out
    if fmt != "svg":
        assert "16位源端口号" in out and "时间戳" in out


def test_rows_cover_every_byte_once():
    raw = bytes.fromhex(CLIENT_FIN)
    rows = tcp_rows(raw, decode_tcp(raw))
    bits = sorted((r.bit_offset, r.bit_offset + r.bits) for r in rows)
    pos = 0
    for start, end in bits:
        assert start == pos
        pos = end
    assert pos == len(raw) * 8


def test_malformed_options_reported_at_offset():
    base = bytes.fromhex(CLIENT_FIN)[:20]
    for opts, why in [(b"\x02\x01\x00\x00", "length 1, below 2"),
                      (b"\x08\x0c\x00\x00", "past the header end"),
                      (b"\x01\x01\x01\x03", "no length byte")]:
        hdr = base[:12] + bytes([0x60]) + base[13:] + opts
        decoded = decode_tcp(hdr)
        bad = [o for o in decoded.options if o.malformed]
        assert len(bad) == 1 and why in bad[0].malformed, (opts, decoded.options)
        assert f"offset {bad[0].offset}" in bad[0].malformed


def _with_options(opts: bytes):
    assert len(opts) % 4 == 0 and len(opts) <= 40
    base = bytes.fromhex(CLIENT_FIN)[:20]
    hdr = base[:12] + bytes([((20 + len(opts)) // 4) << 4]) + base[13:] + opts
    return hdr, decode_tcp(hdr)


def test_every_option_kind_decodes():
    hdr, decoded = _with_options(
        b"\x02\x04\x05\xb4" b"\x03\x03\x07" b"\x04\x02" b"\x05\x0a\x00\x00\x00\x01\x00\x00\x00\x05"
        b"\x22\x06\xaa\xbb\xcc\xdd" b"\x1e\x04\x20\x81" b"\xfe\x06\xf9\x89\x01\x02" b"\x01")
    by = {o.name: o for o in decoded.options}
    assert by["mss"].value("mss") == 1460
    assert by["window_scale"].value("shift") == 7
    assert "sack_permitted" in by
    assert by["sack"].value("blocks") == ((1, 5),)
    assert [o.value("cookie") for o in decoded.options if o.name == "tfo"] == ["aabbccdd", "0102"]
    assert by["mptcp"].value("subtype_name") == "DSS"
    assert not any(o.malformed for o in decoded.options)
    hdr, decoded = _with_options(b"\x13\x12" + bytes(16) + b"\x1d\x06\x07\x08\xee\xff"
                                 b"\x63\x03\x09" b"\x01\x00\x00\x00\x00")
    by = {o.name: o for o in decoded.options}
    assert by["md5"].value("digest") == "00" * 16
    assert by["tcp_ao"].value("key_id") == 7 and by["tcp_ao"].value("mac") == "eeff"
    assert by["unknown"].kind == 99 and by["unknown"].raw == b"\x63\x03\x09"
    assert by["eol"].offset == 20 + 18 + 6 + 3 + 1
    assert by["padding"].length == 3  # the bytes after EOL
    assert not any(o.malformed for o in decoded.options)


SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "sample_pcaps"
SMALL = sorted(p for p in SAMPLES.glob("*.pcap*")
               if p.suffix in (".pcap", ".pcapng") and p.stat().st_size < 8000)


def _ladder_states(path: pathlib.Path) -> dict[int, str]:
    """Each packet's states line, as the whole capture's analysis has them (its ladder)."""
    from teardown_analyzer.analysis import Options, analyze
    return {st["packet"]: f"after this packet: client {st['states']['client'] or '—'}, "
                          f"server {st['states']['server'] or '—'} (as seen at the capture "
                          f"point)"
            for c in analyze([str(path)], Options(keep_ladder=True)).connections
            for st in c.ladder}


@pytest.mark.parametrize("path", SMALL + [SAMPLES / "mixed_200.pcap"], ids=lambda p: p.name)
def test_the_states_after_a_packet_are_the_ladders(path):
    """For every TCP packet of the small samples (every 25th of mixed_200's 200
    connections), the states ``hex --packet`` says each side is in after it are those of
    the whole capture's analysis, its ladder (``analyze --flow``), not those of the
    capture read up to the packet: what later segments, or the capture's end, showed the
    packet to have done."""
    from teardown_analyzer.hexview import annotate_packet
    steps = _ladder_states(path)
    assert steps
    for number in sorted(steps)[::25 if len(steps) > 200 else 1]:
        assert annotate_packet(str(path), number, "en", False).context[-1] == steps[number]


def test_the_states_after_a_packet_from_records_read_one_by_one(monkeypatch):
    """A batch of records that cannot be gathered into columns (a link type the columns do
    not read, a clock beyond 64 bits): its records are decoded one by one, with the same
    states."""
    from teardown_analyzer import columnar
    from teardown_analyzer.hexview import annotate_packet
    path = SAMPLES / "shutdown_crosses_close_server_side.pcap"
    steps = _ladder_states(path)
    monkeypatch.setattr(columnar, "gathered", lambda *args: None)
    for number, line in steps.items():
        assert annotate_packet(str(path), number, "en", False).context[-1] == line


def test_the_states_after_a_packet_are_read_until_its_connection_is_over(tmp_path,
                                                                         monkeypatch):
    """four_way.pcap's connection, then three_way.pcap's 70 s later (an edited capture),
    read a few records at a time: once the first connection's TIME_WAIT is over (60 s),
    nothing can change it, and what comes after is not read; its states are the
    ladder's."""
    import pcapbuild as pb
    from teardown_analyzer import capture, hexview
    linktype, first = pb.read_pcap(SAMPLES / "four_way.pcap")
    _, second = pb.read_pcap(SAMPLES / "three_way.pcap")
    shift = first[-1].ts_ns + 70 * 10**9 - second[0].ts_ns
    path = tmp_path / "two.pcap"
    path.write_bytes(pb.pcap(first + [pb.Rec(r.ts_ns + shift, r.data) for r in second],
                             linktype=linktype))
    steps = _ladder_states(path)
    monkeypatch.setattr(capture, "CHUNK", 256)
    monkeypatch.setattr(capture, "CHUNK_RECORDS", 0)
    read = []
    mine = hexview._mine
    monkeypatch.setattr(hexview, "_mine", lambda batch, tcp: (
        read.append(batch.first + len(batch.starts) - 1), mine(batch, tcp))[1])
    for number in range(1, len(first) + 1):
        read.clear()
        # (a data segment has no step of its own: the states after the step before it)
        assert hexview.annotate_packet(str(path), number, "en", False).context[-1] == \
            steps[max(n for n in steps if n <= number)]
        assert len(read) > 1 and len(first) <= read[-1] < len(first) + len(second)


@pytest.mark.parametrize("lang, line", [
    ("en", "after this packet: client FIN_WAIT2, server LAST_ACK (as seen at the capture "
           "point)"),
    ("zh", "本报文之后: 客户端 FIN_WAIT2, 服务端 LAST_ACK(以抓包点所见)")])
def test_the_states_after_a_fin_the_capture_shows_lost(run_cli, monkeypatch, lang, line):
    """sample_pcaps/lost_fin_then_capture_stops_client_side.pcapng, packet 10: the
    server's FIN, the capture's last packet; the kernel's record has the client in
    FIN_WAIT2 after it (the FIN was lost), which the capture shows by going on for 1.5 s
    with no ACK of it.  Read up to the packet, the capture had it in TIME_WAIT."""
    monkeypatch.setenv("COLUMNS", "250")
    path = SAMPLES / "lost_fin_then_capture_stops_client_side.pcapng"
    truth = json.loads(path.with_name(path.name.replace(".pcapng", ".truth.json")).read_text())
    assert truth["connections"][0]["sides"]["client"]["final_state"] == "FIN_WAIT2"
    code, out, _ = run_cli("hex", str(path), "--packet", "10", "--lang", lang)
    assert code == 0 and line in out.splitlines()


def test_a_packet_from_standard_input():
    """``hex - --packet N`` reads the capture from standard input (whole, into memory: its
    connection is read a second time, after the packet is found) and says what it says of
    the file."""
    import subprocess
    import sys
    path = SAMPLES / "abort_in_last_ack_client_side.pcap"
    args = [sys.executable, "-m", "teardown_analyzer", "hex", "--packet", "11", "--format",
            "markdown"]
    piped = subprocess.run(args[:4] + ["-"] + args[4:], input=path.read_bytes(),
                           capture_output=True, check=True)
    direct = subprocess.run(args[:4] + [str(path)] + args[4:], capture_output=True,
                            check=True)
    assert piped.stdout == direct.stdout
    assert "after this packet: client CLOSED, server CLOSED" in piped.stdout.decode()


def test_the_answers_to_a_new_syn_are_the_old_connections():
    """sample_pcaps/reuse_challenged_client_side.pcap (the kernel's record): the server's
    challenge ACK (packet 11) and the client's RST answering it (packet 12) come after the
    new SYN (packet 10) but are the first incarnation's segments: their numbers are told
    relative to its ISNs, and the states after them are its (the ladder of --flow 1)."""
    from teardown_analyzer.hexview import annotate_packet
    path = str(SAMPLES / "reuse_challenged_client_side.pcap")
    syn, challenge, rst, again = (annotate_packet(path, n, "en", False).context
                                  for n in (10, 11, 12, 13))
    assert syn[0].startswith("connection 10:") and again[0].startswith("connection 10:")
    assert challenge[0].startswith("connection 1:") and rst[0].startswith("connection 1:")
    assert challenge[1].startswith("relative seq 201 ") and challenge[2].startswith(
        "relative ack 66: ") and "the FIN consumes one sequence number" in challenge[2]
    assert rst[1].startswith("relative seq 66 ")
    assert (challenge[-1], rst[-1]) == (
        "after this packet: client CLOSED, server CLOSE_WAIT (as seen at the capture point)",
        "after this packet: client CLOSED, server CLOSED (as seen at the capture point)")
