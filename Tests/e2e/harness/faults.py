"""Fault injection rules for the stand-in gateway.

A rule is posted as JSON to ``POST /_standin/faults``::

    {"mode": "stall-body", "match": "core.db", "times": 1, "after": 65536}

``match`` is a substring of the request target (raw or percent-decoded;
``""`` matches every request), ``times`` limits how many requests the rule
applies to (default: unlimited), ``method`` optionally restricts it to one
HTTP method. The first live rule that matches a request is used. Modes and
their parameters:

=================  ==========================================================
``hang-headers``   read the request, never answer; after release the
                   connection is closed without a response
``stall-body``     send headers and the first ``after`` bytes (default 65536,
                   clamped to length-1), then hang; then close
``status``         answer ``code`` (default 500) with a small HTML body;
                   optional ``headers`` object is added to the response
``corrupt``        flip one byte (XOR 0xFF) at file offset ``offset``
                   (default: middle of the file); same length
``truncate``       announce the full Content-Length, send ``after`` bytes
                   (default 65536, clamped to length-1), then close
``slow``           throttle the body to ``rate`` bytes/s (default 16384)
=================  ==========================================================

On a streamed (chunked) response such as a CAR, ``after`` is not clamped
(``stall-body``/``truncate`` always leave the chunked body unterminated) and
``corrupt``'s default ``offset`` is 1024 (the length is not known up front).

CAR modes apply only to ``?format=car`` requests (and ``raw-corrupt`` only to
``?format=raw`` requests); other requests neither trigger them nor count as
hits. ``index`` selects a block among the *entity* blocks, i.e. those after
the blocks that resolve the path (0 = the terminal block, negative counts
from the end, default: the middle one, ``n // 2``; out-of-range values are
clamped); ``section`` instead gives an absolute position among all blocks
(0 = the first block sent). See :mod:`harness.trustless`.

=================  ==========================================================
``car-reorder``    swap the block at ``index`` with the next one (the last
                   block with the one before it)
``car-drop``       leave out the block at ``index``
``car-duplicate``  send the block at ``index`` twice in a row
``car-corrupt``    flip one byte (XOR 0xFF) of the block data at ``index``;
                   ``offset`` inside the block, default its middle; CID kept
``car-foreign``    replace the block at ``index`` by the valid raw block
                   ``b"foreign"`` with its CIDv1 (raw, sha2-256)
``car-pad``        append ``bytes`` (default 100) garbage bytes (0xAB, an
                   over-long varint) after the last section
``car-oversize``   insert before the entity block at ``index`` (default 0)
                   a valid raw block of ``size`` bytes (default 2 MiB + 1)
``car-truncate``   end the CAR halfway through the section at ``index``;
                   the HTTP body ends cleanly unless ``close`` is true (then
                   the connection is closed without the last chunk)
``raw-corrupt``    flip one byte (XOR 0xFF) of a raw block response at
                   ``offset`` (default: its middle)
=================  ==========================================================

Every hang or throttle ends when the rules are cleared (``DELETE
/_standin/faults``), when the server stops, or after ``max_seconds``
(default and maximum 120 s), whichever comes first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

# applied by harness.trustless to CAR and raw-block responses only
CAR_MODES = ("car-reorder", "car-drop", "car-duplicate", "car-corrupt", "car-foreign", "car-pad",
             "car-oversize", "car-truncate")
RAW_MODES = ("raw-corrupt",)
MODES = ("hang-headers", "stall-body", "status", "corrupt", "truncate", "slow") + CAR_MODES + RAW_MODES
MAX_OVERSIZE = 64 << 20  # largest car-oversize block
MAX_HANG_SECONDS = 120.0


class FaultError(ValueError):
    """An invalid fault rule was posted."""


class CutConnection(Exception):
    """Raised by a response body iterator: close the connection now, without finishing the body."""


@dataclass
class Fault:
    """One fault-injection rule."""

    mode: str
    match: str = ""
    times: int | None = None
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: int = 0
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event, repr=False)

    @classmethod
    def from_json(cls, spec: dict[str, Any]) -> "Fault":
        """Validate and build a rule from its JSON object."""
        if not isinstance(spec, dict):
            raise FaultError("fault must be a JSON object")
        spec = dict(spec)
        mode = spec.pop("mode", None)
        if mode not in MODES:
            raise FaultError(f"mode must be one of {', '.join(MODES)}")
        match = spec.pop("match", "") or ""
        times = spec.pop("times", None)
        if times is not None and (not isinstance(times, int) or times < 0):
            raise FaultError("times must be a non-negative integer")
        method = spec.pop("method", None)
        fault = cls(mode=mode, match=str(match), times=times, method=method, params=spec)
        for key in ("after", "offset", "code", "rate", "section", "bytes", "size"):
            if key in spec and (not isinstance(spec[key], int) or isinstance(spec[key], bool) or spec[key] < 0):
                raise FaultError(f"{key} must be a non-negative integer")
        if "index" in spec and (not isinstance(spec["index"], int) or isinstance(spec["index"], bool)):
            raise FaultError("index must be an integer")
        if "close" in spec and not isinstance(spec["close"], bool):
            raise FaultError("close must be true or false")
        if mode == "car-oversize" and not 0 < spec.get("size", 1) <= MAX_OVERSIZE:
            raise FaultError(f"size must be between 1 and {MAX_OVERSIZE}")
        if mode == "slow" and spec.get("rate") == 0:
            raise FaultError("rate must be positive")
        if "max_seconds" in spec and not isinstance(spec["max_seconds"], (int, float)):
            raise FaultError("max_seconds must be a number")
        return fault

    def to_json(self) -> dict[str, Any]:
        """JSON view of the rule including its hit count."""
        out = {"id": self.id, "mode": self.mode, "match": self.match, "times": self.times, "hits": self.hits}
        if self.method:
            out["method"] = self.method
        out.update(self.params)
        return out

    @property
    def max_seconds(self) -> float:
        """How long a hang/throttle under this rule may last (≤ 120 s)."""
        return min(float(self.params.get("max_seconds", MAX_HANG_SECONDS)), MAX_HANG_SECONDS)

    def wait(self, seconds: float | None = None) -> bool:
        """Block until released or ``seconds`` (default ``max_seconds``) pass.

        Returns True if the rule was released (cleared or server stopping).
        """
        return self.released.wait(self.max_seconds if seconds is None else min(seconds, self.max_seconds))


class FaultTable:
    """Thread-safe list of rules with ``times`` accounting; ``rule`` is the rule type it builds."""

    rule: type[Fault] = Fault

    def __init__(self) -> None:
        """Start with no rules."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        """Validate ``spec`` and append it as a new rule."""
        fault = self.rule.from_json(spec)
        with self._lock:
            fault.id = self._next_id
            self._next_id += 1
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Remove all rules and release every request they hold; return the count."""
        with self._lock:
            faults, self._faults = self._faults, []
        for fault in faults:
            fault.released.set()
        return len(faults)

    def list(self) -> list[dict[str, Any]]:
        """JSON view of the current rules."""
        with self._lock:
            return [f.to_json() for f in self._faults]

    def select(self, method: str, targets: tuple[str, ...], fmt: str | None = None) -> Fault | None:
        """Pick the first live rule matching the request and count the hit.

        ``fmt`` is the requested ``/ipfs`` response format (``car``, ``raw``,
        None for the path gateway): CAR modes only match ``car`` requests and
        ``raw-corrupt`` only ``raw`` ones.
        """
        with self._lock:
            for fault in self._faults:
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                if fault.method and fault.method.upper() != method.upper():
                    continue
                if self.skips(fault, fmt):
                    continue
                if any(fault.match in t for t in targets):
                    fault.hits += 1
                    return fault
        return None


    def skips(self, fault: Fault, fmt: str | None) -> bool:
        """True for a rule that does not apply to requests of this format: CAR modes only match
        ``car`` requests and ``raw-corrupt`` only ``raw`` ones."""
        return (fault.mode in CAR_MODES and fmt != "car") or (fault.mode in RAW_MODES and fmt != "raw")


class Throttle:
    """Paces writes to ``rate`` bytes/s until a deadline or release."""

    def __init__(self, fault: Fault, rate: int):
        """Start pacing now for ``fault`` at ``rate`` bytes per second."""
        self.fault = fault
        self.rate = max(1, rate)
        self.start = time.monotonic()
        self.sent = 0

    @property
    def chunk(self) -> int:
        """Write size giving about ten writes per second."""
        return max(1, min(65536, self.rate // 10))

    def before_write(self, nbytes: int) -> bool:
        """Sleep as needed before writing ``nbytes``; False once the time cap is hit."""
        if self.fault.released.is_set():
            return True
        due = self.start + (self.sent + nbytes) / self.rate
        delay = due - time.monotonic()
        if due - self.start > self.fault.max_seconds:
            return False
        if delay > 0:
            self.fault.released.wait(delay)
        self.sent += nbytes
        return True
