"""The full summary of a kept connection that closed cleanly with FINs or an RST, or is
still open or half-open, made from its records without a tracker.

A connection :mod:`teardown_analyzer.recognise` recognised is kept as its packets
(:func:`teardown_analyzer.columnar._keep`); its full summary is made only when the output
reads it (``--format json``, ``jsonl``, ``csv``, ``--all``), by feeding those packets to a
tracker (:func:`~teardown_analyzer.columnar.replay`) and summarising what it made of them
(:func:`~teardown_analyzer.analysis.summarize`): five sixths of the time of writing such a
connection out.  For the commonest shapes, a four-way or three-way close, a reset, and a
connection still open or half-open at the end of the capture, the summary depends only on
a few records (the handshake, each FIN, the first ACK of each FIN, the RST) and on what each
direction sent, and :func:`clean_close` makes it from those: the events the tracker would
feed each side, the states they lead to looked up in
:data:`~teardown_analyzer.states.TRANSITIONS`, and the pieces of the summary written by
the functions :func:`~teardown_analyzer.analysis.summarize` uses.

The shapes, checked record by record, leaving out a segment the tracker skips as captured
twice (anything else gives None, and a tracker summarises the connection): a SYN from
endpoint 0 (the client); a SYN-ACK from endpoint 1; the client's ACK of that; then no
SYN, no SACK block (data held out of order: flows.py ``Tracker._segment``), and no probe (a pure ACK one before the highest sequence number its sender sent,
which the tracker counts as a keepalive probe, flows.py ``Tracker._probe``).  Then an RST as the last record, at the end of what its sender sent (so without
data), and no FIN (both sides CLOSED: ``rst``); not a bare one answering the peer's data
less than a round trip of the whole path (plus a millisecond) after its sender last sent
new data (it may have closed with more queued: FIN_WAIT1, not shown, flows.py
``Tracker._sending``).  Or no RST, and no FIN (both sides ESTABLISHED:
``none``); or one FIN from X, after
which X sends no data, and none from Y (X in FIN_WAIT1, or FIN_WAIT2 from Y's first ACK
of it; Y in CLOSE_WAIT: ``half-open``); or that, then one FIN from Y, after X's in time,
acknowledging it (not a crossing), no data from Y after it, and as the last record X's
first ACK of it (``four-way``, or ``three-way`` if Y's FIN was its first ACK of X's).
Nothing shows a FIN lost after the capture point: no segment of Y's, more than the round
trip between the capture point and Y (the fastest Y answered, flows.py ``round_trip``; plus
a millisecond) after X's FIN, leaves it out of
its ACK field before Y's first ACK of it, nor does a pure ACK that repeats Y's last from a
millisecond before that round trip on (the FIN out of order), and X ACKs Y's FIN within
its own round trip (plus a millisecond; flows.py ``_ack_overdue``).  Nor does a copy of
X's FIN sent after Y, in ESTABLISHED, owed its delayed ACK of the first (the round trip
plus 200 ms and a millisecond; flows.py ``_delayed_ack_overdue``).
Those are conditions :func:`~teardown_analyzer.recognise.recognise` checks too, without
a FIN sent again (an anomaly).  tests/test_cleanclose.py checks that the summary equals
the tracker's for every connection kept so in the benchmark's mix and in the samples, and
that each condition turns away a connection edited to break it.
"""

from __future__ import annotations

from typing import Any

from .columnar import ROW, _ROW_STRUCT
from .flows import (ACK, DELACK_MAX_NS, DUPLICATE_NS, FIN, FIN_AND_ACK_NOTE, RST,
                    RST_INSTEAD_OF_FIN, SLACK_NS, SYN, gone_note, round_trip, seq_geq)
from .parking import blob_endpoints
from .results import (ConnectionResult, StateEntry, address, direction_dict, fin_dict,
                      time_wait_end, vantage)
from .states import TRANSITIONS, Event, SideState

_M32 = 0xFFFFFFFF
_CTL = SYN | ACK | FIN | RST
_ROLES = ("client", "server")
_NONE = (0, 0, 0, -1, 0, -1, -1, -1, -1, -1, 0)
"""A record no record equals (a direction's before its first)."""


def _states(start: SideState, steps: list[tuple[Event, int, int, str, bool]]
            ) -> list[StateEntry]:
    """A side's states from ``start``, each step an event with its time, packet, note and
    whether the state it leads to is inferred."""
    out = []
    state = start
    for event, ts_ns, packet, note, inferred in steps:
        new = TRANSITIONS[(state, event)]
        out.append(StateEntry(new._value_, ts_ns / 1e9, packet, note, inferred,
                              state._value_, event._value_))
        state = new
    return out


def clean_close(blob: bytes, end_ns: int, time_wait_s: float,
                source: str) -> ConnectionResult | None:
    """The summary of the connection a kept blob holds (:func:`columnar._keep`), at
    ``end_ns`` (the end of its capture), if it is of a shape the module's docstring
    names; else None."""
    # what each direction sent: packets, bytes, the end of its sequence space; without
    # the segments the tracker skips as captured twice
    rows: list[tuple[Any, ...]] = []
    packets, payload, nxt = [0, 0], [0, 0], [-1, -1]
    nxt_ts = [0, 0]  # (when nxt was first captured)
    answer: list[int | None] = [None, None]  # (the fastest each answered)
    last = [_NONE, _NONE]  # each direction's record before
    fin_at: list[list[int]] = [[], []]
    rst_at = -1
    duplicates = 0
    for row in _ROW_STRUCT.iter_unpack(memoryview(blob)[ROW.itemsize:]):
        _, ts, s, ipid, tcp_len, seq, ack, word, window, checksum, opt = row
        plen = tcp_len - (word >> 12) * 4
        if plen < 0 or word < 0x5000 or opt >= 0 and not word & SYN:
            return None  # (a SACK block: the tracker reads it, flows.py Tracker._segment)
        before = last[s]
        if seq == before[5] and ack == before[6] and word == before[7] \
                and ts - before[1] <= DUPLICATE_NS and window == before[8] \
                and checksum == before[9] and ipid == before[3] \
                and (duplicates or word & 0x1FF != RST):  # (flows.Tracker.feed)
            duplicates += 1
            continue
        if rst_at >= 0 or word & SYN and rows[1:]:
            return None  # (a record after an RST; a SYN after the second record)
        if word & RST:
            rst_at = len(rows)
        if word & ACK and (ack != before[6] or not before[7] & ACK) and ack == nxt[1 - s]:
            # (a new ACK field, just what the peer sent: flows.Tracker.feed, answer_ns)
            took = ts - nxt_ts[1 - s]
            if answer[s] is None or took < answer[s]:
                answer[s] = took
        last[s] = row
        packets[s] += 1
        payload[s] += plen
        end = (seq + plen + (word & FIN) + (word >> 1 & 1)) & _M32  # (FIN, SYN: one each)
        if nxt[s] < 0 or 0 < ((end - nxt[s]) & _M32) < 0x80000000:
            nxt_ts[s] = ts
            nxt[s] = end
        elif end == (nxt[s] - 1) & _M32 and word & 0x1FF == ACK and not plen:
            return None  # (a probe: keepalive, or zero-window; flows.py Tracker._probe)
        if word & FIN:
            fin_at[s].append(len(rows))
        rows.append(row)
    n = len(rows)
    if n < 3:
        return None
    # the handshake: the client's SYN, the server's SYN-ACK, the client's ACK of it
    p0, ts0, _, _, _, isn_c, _, word0, _, _, ws_c = rows[0]
    p1, ts1, s1, _, _, isn_s, _, word1, _, _, ws_s = rows[1]
    p2, ts2, s2, _, _, _, ack2, word2, _, _, _ = rows[2]
    # (endpoint 0 sent the first record; no SYN after the second, and no RST but the last,
    # came)
    if word0 & _CTL != SYN or s1 != 1 or word1 & _CTL != SYN | ACK \
            or s2 != 0 or word2 & (ACK | RST) != ACK or not seq_geq(ack2, (isn_s + 1) & _M32):
        return None  # (an RST+ACK third: its ACK is never processed, the server not
        # ESTABLISHED)
    opening = ([(Event.SEND_SYN, ts0, p0, "", False), (Event.RECV_SYNACK, ts1, p1, "", False)],
               [(Event.RECV_SYN, ts0, p0, "", False),
                (Event.RECV_ACK_OF_SYN, ts2, p2, "", False)])
    steps = list(opening)
    fins: list[dict[str, Any] | None] = [None, None]
    after_peer_fin = [0, 0]
    tsl = rows[-1][1]
    kind, initiator, half_s, y_bytes, y_segs = "none", None, None, 0, 0
    tw = closed = None
    anomalies: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    rsts: tuple[dict[str, Any], ...] = ()
    zeek = "S1"
    if rst_at >= 0:
        # an RST, the last record, and no FIN: both sides from ESTABLISHED to CLOSED
        if fin_at[0] or fin_at[1]:
            return None
        pr, _, r, _, _, seq_r, _, word_r, _, _, _ = rows[-1]
        if seq_r != nxt[r]:
            return None  # (out of window: not at the end of what r sent, its own data too)
        bare = not word_r & ACK
        peer = last[1 - r]
        if bare and peer[6] == seq_r and 0 < ((nxt[1 - r] - peer[5]) & _M32) < 0x80000000 \
                and tsl - nxt_ts[r] <= round_trip(ts2 - ts1, answer[0]) \
                + round_trip(ts1 - ts0, answer[1]) + SLACK_NS:
            return None  # (answering the peer's data, sent while r still sent its own: it
            # may have closed with more queued, flows.py Tracker._sending)
        note = gone_note(SideState.ESTABLISHED) if bare else RST_INSTEAD_OF_FIN
        if bare:
            notes = (f"packet {pr}: {note}",)
        steps[r] = steps[r] + [(Event.SEND_RST, tsl, pr, note, bare)]
        steps[1 - r] = steps[1 - r] + [(Event.RECV_RST, tsl, pr, "", False)]
        rsts = ({"from": _ROLES[r], "ts": tsl / 1e9, "packet": pr, "in_window": True,
                 "bare": bare, "note": note},)
        kind, initiator, zeek = "rst", _ROLES[r], ("RSTO", "RSTR")[r]
    elif fin_at[0] or fin_at[1]:
        # X's FIN, the first (and again, before Y's first ACK of it); Y's, if it sent
        # one, acknowledging it
        i1 = min(fin_at[0] + fin_at[1])
        x = rows[i1][2]
        y = 1 - x
        if len(fin_at[y]) > 1:
            return None
        i2 = fin_at[y][0] if fin_at[y] else n
        f1 = rows[i1]
        ts_f1 = f1[1]
        fin_x = (f1[5] + f1[4] - (f1[7] >> 12) * 4) & _M32
        again = fin_at[x][1:]  # (without data: X sends none after its FIN, below)
        if any(rows[i][5] != fin_x for i in again):
            return None  # (a FIN with another sequence number)
        if i2 < n:
            f2 = rows[i2]
            fin_y = (f2[5] + f2[4] - (f2[7] >> 12) * 4) & _M32
            if not ts_f1 < f2[1] or not f2[7] & ACK \
                    or not seq_geq(f2[6], (fin_x + 1) & _M32):
                return None
        # after X's FIN: Y's first ACK of it (a1), Y's data, X's segments (no data);
        # after Y's FIN: no data from Y (each of its segments arrives at X's TIME_WAIT),
        # and X's first ACK of it the last record.  Within the round trip between the
        # capture point and each side (plus a millisecond) of the FIN it takes: a segment
        # of Y's after that leaving X's FIN out, or X's ACK of Y's FIN (owed at once in
        # FIN_WAIT1 or FIN_WAIT2) later, shows the FIN never reached it (flows.py
        # _ack_overdue)
        there = (round_trip(ts2 - ts1, answer[0]) + SLACK_NS,
                 round_trip(ts1 - ts0, answer[1]) + SLACK_NS)  # (client, server:
        # flows.Tracker._there)
        if i2 < n and rows[-1][1] > rows[i2][1] + there[x]:
            return None
        a1 = -1
        arrivals = 0
        before = next(r for r in reversed(rows[:i1]) if r[2] == y)  # (Y's SYN-ACK at least)
        for i in range(i1 + 1, n):
            _, ts, s, _, tcp_len, _, ack, word, window, _, _ = rows[i]
            plen = tcp_len - (word >> 12) * 4
            if s == x:
                if plen:
                    return None
                if i > i2 and word & ACK and seq_geq(ack, (fin_y + 1) & _M32) \
                        and i < n - 1:
                    return None
            else:
                if a1 < 0 and word & ACK:
                    if seq_geq(ack, (fin_x + 1) & _M32):
                        a1 = i
                    elif ts > ts_f1 + there[y] or not plen and word & 0x1FF == ACK \
                            and (ack, window) == (before[6], before[8]) \
                            and ts >= ts_f1 + there[y] - 2 * SLACK_NS:
                        return None  # (or a pure ACK repeating Y's last as the FIN
                        # arrives: it came out of order, flows.py Tracker.feed)
                before = rows[i]
                if plen:
                    if i > i2:
                        return None
                    y_bytes += plen
                    y_segs += 1
                if i > i2:
                    arrivals += 1
        if again and 0 <= a1 < again[-1]:
            return None  # (sent again after Y's ACK of it: that ACK lost after the capture
            # point, flows.py _revoke_ack)
        if any(rows[i][1] > ts_f1 + there[y] + DELACK_MAX_NS for i in again):
            return None  # (sent again, with no ACK of it, after Y, in ESTABLISHED, owed a
            # delayed one: the first never reached Y, flows.py _delayed_ack_overdue)
        if again:
            anomalies = ("FIN retransmitted",)
        after_peer_fin[y] = y_bytes
        initiator = _ROLES[x]
        steps[x] = steps[x] + [(Event.SEND_FIN, ts_f1, f1[0], "", False)]
        steps[y] = steps[y] + [(Event.RECV_FIN, ts_f1, f1[0], "", False)]
        # (the ACK of X's FIN, if Y sent one: its packet, time and whether on Y's FIN)
        a_packet, a_ts, a_word = rows[a1][:2] + rows[a1][7:8] if a1 >= 0 else (None, None, 0)
        fins[x] = fin_dict(fin_x, ts_f1, f1[0], f1[4] > (f1[7] >> 12) * 4,
                           [{"ts": rows[i][1] / 1e9, "packet": rows[i][0]} for i in again],
                           a_ts, a_packet, bool(a_word & FIN))
        if i2 == n:  # half-open: Y in CLOSE_WAIT, X in FIN_WAIT1 or FIN_WAIT2
            if a1 >= 0:
                steps[x].append((Event.RECV_ACK_OF_FIN, a_ts, a_packet, "", False))
            else:
                anomalies += (f"ACK of the {_ROLES[x]}'s FIN not captured",)
            kind = "half-open"
            half_s = round(max(0, end_ns - ts_f1) / 1e9, 9)
            zeek = "S2" if x == 0 else "S3"
        else:  # four-way or three-way: X in TIME_WAIT, Y CLOSED
            pl, tsl, sl, _, _, _, ackl, wordl, _, _, _ = rows[-1]
            if sl != x or not wordl & ACK or not seq_geq(ackl, (fin_y + 1) & _M32):
                return None
            ts_f2 = f2[1]
            if a1 == i2:
                kind = "three-way"
                steps[x].append((Event.RECV_FIN_ACK_OF_FIN, ts_f2, f2[0], FIN_AND_ACK_NOTE,
                                  False))
            else:
                kind = "four-way"
                steps[x] += [(Event.RECV_ACK_OF_FIN, a_ts, a_packet, "", False),
                             (Event.RECV_FIN, ts_f2, f2[0], "", False)]
            steps[y] += [(Event.SEND_FIN, ts_f2, f2[0], "", False),
                         (Event.RECV_ACK_OF_FIN, tsl, pl, "", False)]
            fins[y] = fin_dict(fin_y, ts_f2, f2[0], f2[4] > (f2[7] >> 12) * 4, [], tsl, pl,
                               bool(wordl & FIN))
            half_s = round(max(0, ts_f2 - ts_f1) / 1e9, 9)
            closed, expired = time_wait_end(ts_f2, ts_f2, end_ns, time_wait_s)
            tw = {"side": _ROLES[x], "entered_ts": ts_f2 / 1e9, "entered_packet": f2[0],
                  "fin_reacks": 0, "fin_reack_packets": [], "arrivals": arrivals,
                  "reuse": None, "end": expired}
            zeek = "SF"
    # each side's states, from the events it took
    states = [_states(SideState.CLOSED, steps[0]), _states(SideState.LISTEN, steps[1])]
    if tw is not None and closed is not None:
        states[x].append(closed)
    directions = [direction_dict(isn, packets[s], payload[s], nxt[s],
                                 None if ws < 0 else ws, fins[s], after_peer_fin[s], 0, 0, 0)
                  for s, isn, ws in ((0, isn_c, ws_c), (1, isn_s, ws_s))]
    (a_0, port_0), (a_1, port_1) = blob_endpoints(blob)
    return ConnectionResult(
        id=p0, client=(address(a_0), port_0), server=(address(a_1), port_1), incarnation=0,
        first_ts=ts0 / 1e9, last_ts=tsl / 1e9, packets=n, handshake="seen",
        roles_from="handshake", kind=kind, initiator=initiator, half_close_s=half_s,
        half_close_bytes=y_bytes, half_close_segments=y_segs,
        client_states=tuple(states[0]), server_states=tuple(states[1]), time_wait=tw,
        rsts=rsts, anomalies=anomalies, notes=notes, zeek_state=zeek,
        directions={"client": directions[0], "server": directions[1]},
        vantage=vantage(ts0, ts1, ts2, (round_trip(ts2 - ts1, answer[0]),
                                        round_trip(ts1 - ts0, answer[1]))),
        source=source)
