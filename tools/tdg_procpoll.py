"""Poll /proc/PID/net/tcp{,6} of one or more network namespaces every few ms
and log every change of a socket's state, including timewait mini-sockets
(which the sock:inet_sock_set_state tracepoint never reports).

usage: tdg_procpoll.py OUT.jsonl INTERVAL_S LABEL=PID [LABEL=PID ...] [--port P]

Output: JSON lines.  {"t": wall time of the poll that saw the change,
"t0": wall time just before that poll's read
(the change happened before t), "prev_t0": wall time just before the previous
poll's read (the change happened after it), "ns": label,
"local": [ip, port], "remote": [ip, port], "st": STATE or null when gone,
"tw": true for a timewait mini-socket (timer code 3)}.  A final line
{"summary": ...} gives poll count and the largest gap between polls.
"""
import ipaddress
import json
import os
import signal
import sys
import time

STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV"}

stop = False


def _on_term(*_):
    global stop
    stop = True


def addr(hexaddr):
    ip, port = hexaddr.split(":")
    raw = bytes.fromhex(ip)
    if len(raw) == 4:
        a = ipaddress.IPv4Address(raw[::-1])
    else:
        a = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
        if a.ipv4_mapped:
            a = a.ipv4_mapped
    return str(a), int(port, 16)


def snapshot(pid, port_filter):
    out = {}
    for fn in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{fn}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for ln in lines:
            p = ln.split()
            st = int(p[3], 16)
            if st == 10:
                continue  # LISTEN
            loc, rem = addr(p[1]), addr(p[2])
            if port_filter and loc[1] not in port_filter and rem[1] not in port_filter:
                continue
            tr = int(p[5].split(":")[0], 16)
            out[(loc, rem)] = (STATES.get(st, str(st)), tr == 3)
    return out


def main():
    outp, interval = sys.argv[1], float(sys.argv[2])
    targets, ports = [], set()
    args = sys.argv[3:]
    i = 0
    while i < len(args):
        if args[i] == "--port":
            ports.add(int(args[i + 1]))
            i += 2
            continue
        lab, pid = args[i].split("=")
        targets.append((lab, int(pid)))
        i += 1
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    try:  # keep the polling period tight on a busy 2-core machine
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (AttributeError, OSError):
        pass
    prev = {lab: {} for lab, _ in targets}
    last_t = {lab: None for lab, _ in targets}
    n, maxgap = 0, 0.0
    with open(outp, "w") as out:
        out.write(json.dumps({"start": time.time()}) + "\n")
        out.flush()
        while not stop:
            for lab, pid in targets:
                t0 = time.time()
                snap = snapshot(pid, ports)
                t = time.time()
                pt = last_t[lab]
                if pt is not None:
                    maxgap = max(maxgap, t - pt)
                old = prev[lab]
                for k, v in snap.items():
                    if old.get(k) != v:
                        out.write(json.dumps({"t": t, "t0": t0, "prev_t0": pt, "ns": lab, "local": k[0],
                                              "remote": k[1], "st": v[0], "tw": v[1]}) + "\n")
                for k, v in old.items():
                    if k not in snap:
                        out.write(json.dumps({"t": t, "t0": t0, "prev_t0": pt, "ns": lab, "local": k[0],
                                              "remote": k[1], "st": None, "tw": v[1]}) + "\n")
                prev[lab] = snap
                last_t[lab] = t0
            n += 1
            time.sleep(interval)
        final = {lab: [[list(k[0]), list(k[1]), v[0], v[1]] for k, v in prev[lab].items()] for lab, _ in targets}
        out.write(json.dumps({"summary": {"polls": n, "max_gap_s": maxgap, "interval_s": interval,
                                          "end": time.time(), "final": final}}) + "\n")


if __name__ == "__main__":
    main()
