import Synchronization

/// Decides, for a race of whole files, when the HTTP mirrors join: by the ``HedgeRule`` over the
/// IPFS attempts it watches, or as soon as every IPFS source has failed.
final class HedgeGate: Sendable {
    private struct Watched: Sendable {
        var progress: TransferProgress
        var remembered: Speed?
    }

    private let start = Monotonic.nanoseconds()
    private let rule: HedgeRule
    private let opened = Atomic<Bool>(false)
    private let watched = Mutex<[Watched]>([])

    init(rule: HedgeRule) {
        self.rule = rule
    }

    /// Adds an IPFS attempt whose progress the rule judges; `remembered` is its speed in earlier calls.
    func watch(_ progress: TransferProgress, remembered: Speed?) {
        watched.withLock { $0.append(Watched(progress: progress, remembered: remembered)) }
    }

    /// Opens the gate for good.
    func open() {
        opened.store(true, ordering: .relaxed)
    }

    /// True once the mirrors should start.
    var isOpen: Bool {
        if opened.load(ordering: .relaxed) { return true }
        let now = Monotonic.nanoseconds()
        let runners = watched.withLock { watched in
            watched.map { entry in
                HedgeRule.Runner(
                    progress: entry.progress, remembered: entry.remembered,
                    remaining: entry.progress.expectedTotal.map { $0 - entry.progress.total }, now: now)
            }
        }
        return rule.startsMirror(elapsed: Double(now &- start) / 1e9, runners: runners, sharesWork: false)
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
