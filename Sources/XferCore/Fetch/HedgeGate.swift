import Synchronization

/// Decides when the HTTP mirrors join the race: as soon as every IPFS source has failed, or when
/// IPFS has gone `delay` seconds without delivering a byte (at the start or mid-file).
final class HedgeGate: Sendable {
    private let start = Monotonic.nanoseconds()
    private let delay: Double
    private let opened = Atomic<Bool>(false)
    private let watched = Mutex<[TransferProgress]>([])

    init(delay: Double) {
        self.delay = delay
    }

    /// Adds an IPFS attempt whose progress keeps the gate closed.
    func watch(_ progress: TransferProgress) {
        watched.withLock { $0.append(progress) }
    }

    /// Opens the gate for good.
    func open() {
        opened.store(true, ordering: .relaxed)
    }

    /// True once the mirrors should start.
    var isOpen: Bool {
        if opened.load(ordering: .relaxed) { return true }
        let lastByte = watched.withLock { $0.map(\.lastByteTime).max() ?? 0 }
        return Monotonic.seconds(since: max(start, lastByte)) >= delay
    }

    /// Waits until the gate opens; returns false when the task was cancelled first.
    func wait() async -> Bool {
        while !isOpen {
            // A 10 ms poll keeps the hedge within 1% of a one-second delay and costs nothing.
            do { try await Task.sleep(nanoseconds: 10_000_000) } catch { return false }
        }
        return true
    }
}
