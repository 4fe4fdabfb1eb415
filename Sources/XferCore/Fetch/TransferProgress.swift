import Synchronization

/// Bytes moved by one attempt and when the last one arrived; read by the race and the progress line.
public final class TransferProgress: Sendable {
    private let bytes = Atomic<Int64>(0)
    private let lastByte = Atomic<UInt64>(0)

    public init() {}

    /// Records `count` new bytes now.
    public func add(_ count: Int) {
        bytes.add(Int64(count), ordering: .relaxed)
        lastByte.store(Monotonic.nanoseconds(), ordering: .relaxed)
    }

    /// Bytes so far.
    public var total: Int64 { bytes.load(ordering: .relaxed) }

    /// When the last byte came (``Monotonic/nanoseconds()``), or 0 before the first.
    public var lastByteTime: UInt64 { lastByte.load(ordering: .relaxed) }
}
