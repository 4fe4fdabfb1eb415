import Synchronization

/// The attempts running now, for the progress line to show the one that is furthest ahead.
public final class ProgressBoard: Sendable {
    private struct Entry {
        var label: String
        var progress: TransferProgress
        var start: UInt64
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    func track(_ label: String, _ progress: TransferProgress) {
        entries.withLock { $0.append(Entry(label: label, progress: progress, start: Monotonic.nanoseconds())) }
    }

    func untrack(_ label: String) {
        entries.withLock { $0.removeAll { $0.label == label } }
    }

    /// The attempt with the most bytes: its label, bytes and rate in bytes per second.
    func leader() -> (label: String, bytes: Int64, rate: Double)? {
        entries.withLock { entries in
            guard let best = entries.max(by: { $0.progress.total < $1.progress.total }) else { return nil }
            let seconds = max(Monotonic.seconds(since: best.start), 0.001)
            return (best.label, best.progress.total, Double(best.progress.total) / seconds)
        }
    }
}
