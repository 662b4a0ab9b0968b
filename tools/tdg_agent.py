"""Socket agent for tools/gen_samples.py.

Runs inside one network namespace (started with `ip netns exec NS python3
tdg_agent.py`) and executes small Python snippets sent by the generator, one
JSON object per line on stdin:

  {"code": "..."}                 run now, reply {"ok": true, "r": _r}
  {"code": "...", "bg": "name"}   run in a thread, reply at once
  {"join": "name", "timeout": s}  wait for a background snippet, reply its _r

Snippets see the helpers below and a shared dict S of sockets.
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import traceback

S = {}
_out_lock = threading.Lock()


def at(t):
    """Sleep until wall-clock time t (time.time())."""
    d = t - time.time()
    if d > 0:
        time.sleep(d)


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def listen(name, host, port, backlog=256):
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(backlog)
    S[name] = s
    return s


def connect(name, host, port, src=None, sport=0, timeout=5.0):
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if src is not None or sport:
        s.bind((src or ("::" if ":" in host else "0.0.0.0"), sport))
    s.settimeout(timeout)
    s.connect((host, port))
    s.settimeout(None)
    S[name] = s
    return s.getsockname()[1]


def accept(name, lname, timeout=5.0):
    ls = S[lname]
    ls.settimeout(timeout)
    c, peer = ls.accept()
    c.settimeout(None)
    S[name] = c
    return peer[1]


def accept_n(lname, n, prefix, timeout=10.0):
    """Accept n connections; name them prefix+str(peer_port)."""
    ls = S[lname]
    ls.settimeout(timeout)
    got = []
    for _ in range(n):
        c, peer = ls.accept()
        c.settimeout(None)
        S[prefix + str(peer[1])] = c
        got.append(peer[1])
    return got


def send(name, n=100, fill=b"x"):
    S[name].sendall((fill * n)[:n])
    return n


def recv_n(name, n, timeout=5.0):
    s = S[name]
    s.settimeout(timeout)
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            break
        got += b
    s.settimeout(None)
    return len(got)


def recv_eof(name, timeout=10.0):
    """Read until EOF; return number of bytes read."""
    s = S[name]
    s.settimeout(timeout)
    total = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        total += len(b)
    s.settimeout(None)
    return total


def close(name):
    s = S.pop(name)
    s.close()


def shut_wr(name):
    S[name].shutdown(socket.SHUT_WR)


def linger0(name):
    S[name].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def keepalive(name, idle, interval, count=None):
    """SO_KEEPALIVE on, the first probe after ``idle`` seconds without anything received,
    then one every ``interval`` seconds; ``count`` unanswered and the socket gives up
    (TCP_KEEPCNT; else the system's, net.ipv4.tcp_keepalive_probes)."""
    s = S[name]
    s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
    if count is not None:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)


def udp_sink(name, host, port):
    u = socket.socket(fam(host), socket.SOCK_DGRAM)
    u.bind((host, port))
    S[name] = u


def udp_filler(host, port, count, size):
    u = socket.socket(fam(host), socket.SOCK_DGRAM)
    for _ in range(count):
        u.sendto(b"f" * size, (host, port))
    u.close()


G = dict(globals())


def _reply(obj):
    with _out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def _run(code):
    L = {}
    exec(code, G, L)
    return L.get("_r")


def main():
    threads = {}
    _reply({"ok": True, "r": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if "join" in req:
            th, box = threads.pop(req["join"])
            th.join(req.get("timeout"))
            if th.is_alive():
                _reply({"ok": False, "err": "background snippet still running"})
            elif "err" in box:
                _reply({"ok": False, "err": box["err"]})
            else:
                _reply({"ok": True, "r": box.get("r")})
            continue
        code = req["code"]
        if req.get("bg"):
            box = {}

            def target(code=code, box=box):
                try:
                    box["r"] = _run(code)
                except Exception:
                    box["err"] = traceback.format_exc()

            th = threading.Thread(target=target, daemon=True)
            threads[req["bg"]] = (th, box)
            th.start()
            _reply({"ok": True, "r": None})
            continue
        try:
            _reply({"ok": True, "r": _run(code)})
        except Exception:
            _reply({"ok": False, "err": traceback.format_exc()})


if __name__ == "__main__":
    main()
