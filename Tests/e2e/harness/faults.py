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

Every hang or throttle ends when the rules are cleared (``DELETE
/_standin/faults``), when the server stops, or after ``max_seconds``
(default and maximum 120 s), whichever comes first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

MODES = ("hang-headers", "stall-body", "status", "corrupt", "truncate", "slow",
         # applied by harness.trustless to CAR and raw-block responses
         "car-reorder", "car-drop", "car-duplicate", "car-corrupt", "car-foreign", "car-pad",
         "car-oversize", "car-truncate", "raw-corrupt")
MAX_HANG_SECONDS = 120.0


class FaultError(ValueError):
    """An invalid fault rule was posted."""


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
        for key in ("after", "offset", "code", "rate"):
            if key in spec and (not isinstance(spec[key], int) or spec[key] < 0):
                raise FaultError(f"{key} must be a non-negative integer")
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
    """Thread-safe list of rules with ``times`` accounting."""

    def __init__(self) -> None:
        """Start with no rules."""
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> Fault:
        """Validate ``spec`` and append it as a new rule."""
        fault = Fault.from_json(spec)
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

    def select(self, method: str, targets: tuple[str, ...]) -> Fault | None:
        """Pick the first live rule matching the request and count the hit."""
        with self._lock:
            for fault in self._faults:
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                if fault.method and fault.method.upper() != method.upper():
                    continue
                if any(fault.match in t for t in targets):
                    fault.hits += 1
                    return fault
        return None


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
