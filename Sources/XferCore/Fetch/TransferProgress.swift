import Synchronization

/// Bytes moved by one attempt, when they came, and how fast they are coming now; read by the
/// race, the hedge and the progress line.
public final class TransferProgress: Sendable {
    /// How far back the current rate looks: long enough to smooth TCP's bursts, short enough
    /// to see a source that slowed down mid-file within a second.
    static let window: UInt64 = 1_000_000_000
    /// The least time since the first byte for a rate to mean anything.
    static let minimumSpan: UInt64 = 200_000_000
    private static let sampleSpacing: UInt64 = 50_000_000
    private static let sampleCount = 24

    private struct Samples {
        /// (time, total) pairs, oldest first, at most one per ``sampleSpacing``.
        var points: [(time: UInt64, total: Int64)] = []
        var firstByte: UInt64 = 0
    }

    private let bytes = Atomic<Int64>(0)
    private let lastByte = Atomic<UInt64>(0)
    private let samples = Mutex(Samples())
    /// When the attempt started (``Monotonic/nanoseconds()``).
    public let startTime: UInt64
    private let expected = Atomic<Int64>(-1)

    public init() {
        startTime = Monotonic.nanoseconds()
    }

    /// Records `count` new bytes now.
    public func add(_ count: Int) {
        let now = Monotonic.nanoseconds()
        let total = bytes.add(Int64(count), ordering: .relaxed).newValue
        lastByte.store(now, ordering: .relaxed)
        samples.withLock { samples in
            if samples.firstByte == 0 { samples.firstByte = now }
            if let last = samples.points.last, now &- last.time < Self.sampleSpacing {
                samples.points[samples.points.count - 1].total = total
                return
            }
            if samples.points.count == Self.sampleCount { samples.points.removeFirst() }
            samples.points.append((now, total))
        }
    }

    /// Bytes so far.
    public var total: Int64 { bytes.load(ordering: .relaxed) }

    /// When the last byte came (``Monotonic/nanoseconds()``), or 0 before the first.
    public var lastByteTime: UInt64 { lastByte.load(ordering: .relaxed) }

    /// Seconds from the start to the first byte, nil before it came.
    public var firstByteSeconds: Double? {
        let first = samples.withLock { $0.firstByte }
        return first == 0 ? nil : Double(first &- startTime) / 1e9
    }

    /// The bytes this attempt will move in all, when the response said (its Content-Length).
    public var expectedTotal: Int64? {
        let value = expected.load(ordering: .relaxed)
        return value < 0 ? nil : value
    }

    /// Records the response's announced length.
    public func expect(_ total: Int64) {
        expected.store(total, ordering: .relaxed)
    }

    /// Bytes per second over the last second up to `now` (silence counts), or nil when the first
    /// byte came less than ``minimumSpan`` ago.
    public func rate(now: UInt64 = Monotonic.nanoseconds()) -> Double? {
        samples.withLock { samples in
            guard samples.firstByte != 0, now &- samples.firstByte >= Self.minimumSpan, let last = samples.points.last else {
                return nil
            }
            // The newest point at least a window old, or the first byte's when the attempt is younger.
            let floor = now &- Self.window
            var base = (time: samples.firstByte, total: Int64(0))
            if now > Self.window, let older = samples.points.last(where: { $0.time <= floor }) { base = older }
            let seconds = Double(now &- base.time) / 1e9
            return seconds > 0 ? Double(last.total - base.total) / seconds : nil
        }
    }

    /// What this attempt has shown so far, for the rates remembered between calls; nil when it
    /// moved too little to say.
    func measuredSpeed(now: UInt64 = Monotonic.nanoseconds()) -> Speed? {
        let (first, total, last) = samples.withLock { ($0.firstByte, $0.points.last?.total ?? 0, $0.points.last?.time ?? 0) }
        guard first != 0 else { return nil }
        let span = Double(max(last, now) &- first) / 1e9
        // A trickle says enough about a source after half a second, however few bytes it brought.
        guard total >= Speed.minimumSample || span >= 0.5, span >= Double(Self.minimumSpan) / 1e9 else { return nil }
        return Speed(bytesPerSecond: Double(total) / span, firstByte: Double(first &- startTime) / 1e9)
    }
}
