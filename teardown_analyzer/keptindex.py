"""Where the connections recognised a window at a time
(:mod:`teardown_analyzer.columnar`) are parked until they are let go: the tracker's
:class:`~teardown_analyzer.flows.Kept`, by the hash of each one's endpoints, in numpy
arrays rather than in the tracker's dicts (no Python object per connection; a late
segment of a 4-tuple still finds its connection, and takes it back)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .flows import Tracker
from .recognise import pair_hash


class KeptIndex:
    """Where the connections kept here are parked (the tracker's
    :class:`~teardown_analyzer.flows.Kept`): by the hash of their two endpoints
    (:func:`~teardown_analyzer.recognise.pair_hash`), 24 bytes each and no Python object
    (the tracker's own parked connections each have a 4-tuple and a tuple in a dict), in
    runs sorted by it: each window's a run, merged with the run before it
    while that is at most twice as long (so a window costs about as much to add
    whatever is parked already, and a lookup searches a few runs).  It also knows, from
    the tracker's :attr:`~teardown_analyzer.flows.Tracker.entered`, which connections
    the tracker holds (:meth:`holds`)."""

    def __init__(self, tracker: Tracker, endpoints: Callable[[int], bytes]) -> None:
        self.endpoints = endpoints
        """The endpoints of the connection kept with a handle, as
        :data:`~teardown_analyzer.columnar.HEADER` has them (read back when a 4-tuple's
        hash finds one: hashes may be alike)."""
        self.runs: list[np.ndarray] = []
        """Of :data:`PARKED`, each sorted by hash."""
        self.live = 0
        self.soonest = _NEVER
        """The earliest due of those here (or earlier)."""
        self._tracker = tracker
        self._held = np.empty(0, np.uint64)
        """The hashes of what the tracker holds (its table and its own parked ones), or
        held when last looked at (the ones let go since stay until :meth:`_look`
        starts it again), sorted."""
        tracker.kept, tracker.entered = self, []
        self._look(again=True)

    def __len__(self) -> int:
        return self.live

    def add(self, hashes: np.ndarray, dues: np.ndarray, handles: np.ndarray) -> None:
        """Park connections: the hash of each one's endpoints, when each is due (-1: an
        open one), its handle."""
        run = np.empty(len(hashes), PARKED)
        run["hash"], run["due"], run["handle"] = hashes, dues, handles
        runs = self.runs
        runs.append(run[np.argsort(hashes)])
        while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
            run = np.concatenate((runs.pop(), runs.pop()))  # two sorted runs, merged:
            runs.append(run[np.argsort(run["hash"], kind="stable")])
        self.live += len(hashes)
        timed = dues[dues >= 0]
        if len(timed):
            self.soonest = min(self.soonest, int(timed.min()))

    def holds(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each hash may be of a connection parked here or held by the tracker
        (if it is not, neither holds anything of that connection's 4-tuple)."""
        self._look()
        found = _member(self._held, hashes)
        for run in self.runs:
            found |= _member(run["hash"], hashes)
        return found

    def take(self, key: tuple[bytes, int, bytes, int], due_by: int | None) -> int | None:
        h = pair_hash(key)
        version, a, b = endpoints(key)
        mine = version + a + b, version + b + a
        for run in self.runs:
            hashes = run["hash"]
            at = int(np.searchsorted(hashes, np.uint64(h)))
            while at < len(run) and int(hashes[at]) == h:
                handle = int(run["handle"][at])
                if handle >= 0 and self.endpoints(handle) in mine:
                    run["handle"][at] = -1
                    self.live -= 1
                    self.soonest = -1  # (taken back: to be forgotten at the next expire)
                    due = int(run["due"][at])
                    return None if due_by is not None and 0 <= due <= due_by else handle
                at += 1
        return None

    def expire(self, now_ns: int) -> None:
        if len(self._tracker.entered or ()) > _LOOK_AFTER:
            self._look()  # (a long stretch fed one by one: what it listed, made short)
        if now_ns < self.soonest:
            return
        runs, self.soonest = [], _NEVER
        for run in self.runs:
            due = run["due"]
            run = run[(run["handle"] >= 0) & ((due < 0) | (due > now_ns))]
            if len(run):
                runs.append(run)
                timed = run["due"][run["due"] >= 0]
                if len(timed):
                    self.soonest = min(self.soonest, int(timed.min()))
        self.runs = runs
        self.live = sum(len(run) for run in runs)

    def _look(self, again: bool = False) -> None:
        """Bring :attr:`_held` up to date with the tracker: add what entered its table
        since the last look; start again from its table and its own parked ones (each
        hash computed here, in Python) when more than twice as many hashes as they hold
        are listed."""
        tracker = self._tracker
        holding = len(tracker.conns) // 2 + len(tracker.parked)
        if again or len(self._held) + len(tracker.entered or ()) > 2 * holding + 1024:
            fours = [k for k, (_, s) in tracker.conns.items() if not s] + list(tracker.parked)
            self._held = np.sort(np.array([pair_hash(k) for k in fours], np.uint64))
        elif tracker.entered:
            new = np.array([pair_hash(k) for k in tracker.entered], np.uint64)
            self._held = np.sort(np.concatenate((self._held, new)))
        if tracker.entered:
            tracker.entered.clear()


_NEVER = np.iinfo(np.int64).max
_LOOK_AFTER = 4096
"""The 4-tuples the tracker lists as entered (:meth:`KeptIndex._look`) are read at each
sweep once there are more than this many, not only with the next window."""
PARKED = np.dtype([("hash", "<u8"), ("due", "<i8"), ("handle", "<i8")])
"""A connection parked in a :class:`KeptIndex`: the hash of its endpoints, when it is
let go (-1: an open one, at the end of the capture), its handle (-1: taken back since
the last expiry)."""


def _member(sorted_values: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``sorted_values``."""
    at = np.minimum(np.searchsorted(sorted_values, values), max(len(sorted_values) - 1, 0))
    return sorted_values[at] == values if len(sorted_values) else np.zeros(len(values), bool)


def endpoints(key: tuple[bytes, int, bytes, int]) -> tuple[bytes, bytes, bytes]:
    """A 4-tuple as :func:`~teardown_analyzer.columnar.gather`'s ``key`` has it: the IP
    version's byte, each endpoint's 18 bytes."""
    src, sport, dst, dport = key
    return (b"\4" if len(src) == 4 else b"\6", src.ljust(16, b"\0") + sport.to_bytes(2, "big"),
            dst.ljust(16, b"\0") + dport.to_bytes(2, "big"))
