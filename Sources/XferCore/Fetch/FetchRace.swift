import CurlTransfer
import Glibc

/// Races the sources for one file of unknown size or hash (databases, signatures, packages no
/// sync db lists): IPFS sources at once, the mirrors one after another once the ``HedgeGate``
/// opens. The first verified file wins and every other attempt is cancelled.
struct FetchRace: Sendable {
    /// One source's attempt, as the race saw it.
    struct Failure: Sendable {
        var source: any Source
        var error: any Error
        var bytes: Int64
        var seconds: Double
        var speed: Speed?

        var wasCancelled: Bool {
            error is CancellationError || (error as? TransferError) == .cancelled
        }
    }

    /// The race's result: the winner (if any) and what every other attempt did.
    struct Result: Sendable {
        var winner: (source: any Source, file: DownloadFile, seconds: Double)?
        var failures: [Failure]
        /// The speeds of the attempts that sent enough to say.
        var speeds: [(key: String, speed: Speed)] = []
    }

    private enum Outcome: Sendable {
        /// A verified file, its speed, and the chain attempts that failed before it.
        case won(any Source, DownloadFile, Double, Speed?, earlier: [Failure])
        /// One IPFS attempt failed.
        case failed([Failure])
        /// The mirror chain ended without a file.
        case chainFailed([Failure])
    }

    /// The IPFS sources and their speeds remembered from earlier calls.
    let ipfs: [(source: any Source, remembered: Speed?)]
    let chain: [any Source]
    let expectation: Expectation
    let workspace: Workspace
    let timeouts: Timeouts
    let rule: HedgeRule
    let board: ProgressBoard?

    func run() async -> Result {
        let gate = HedgeGate(rule: rule)
        if ipfs.isEmpty { gate.open() }
        return await withTaskGroup(of: Outcome.self) { group in
            for (source, remembered) in ipfs {
                let progress = TransferProgress()
                gate.watch(progress, remembered: remembered)
                group.addTask { await attempt(source, progress: progress) }
            }
            group.addTask {
                guard await gate.wait() else { return .chainFailed([]) }
                var failures: [Failure] = []
                for source in chain {
                    if Task.isCancelled { break }
                    switch await attempt(source, progress: TransferProgress()) {
                    case .won(let source, let file, let seconds, let speed, _):
                        return .won(source, file, seconds, speed, earlier: failures)
                    case .failed(let more), .chainFailed(let more): failures += more
                    }
                }
                return .chainFailed(failures)
            }
            var result = Result(winner: nil, failures: [])
            var ipfsLeft = ipfs.count
            for await outcome in group {
                switch outcome {
                case .won(let source, let file, let seconds, let speed, let earlier):
                    result.failures += earlier
                    if let speed { result.speeds.append((source.healthKey, speed)) }
                    if result.winner == nil {
                        result.winner = (source, file, seconds)
                        group.cancelAll()
                    }
                case .failed(let failures):
                    result.failures += failures
                    ipfsLeft -= 1
                    if ipfsLeft == 0 { gate.open() }
                case .chainFailed(let failures):
                    result.failures += failures
                }
            }
            for failure in result.failures {
                if let speed = failure.speed { result.speeds.append((failure.source.healthKey, speed)) }
            }
            return result
        }
    }

    /// Runs one source to a verified file, resuming a pooled partial file when it can.
    private func attempt(_ source: any Source, progress: TransferProgress) async -> Outcome {
        let start = Monotonic.nanoseconds()
        let prefix = expectation.isResumable ? workspace.takePrefix() : nil
        let file: DownloadFile
        do {
            file = try DownloadFile(
                path: workspace.temporaryPath(), expectation: expectation, progress: progress, adopting: prefix)
        } catch {
            if let prefix { unlink(prefix) }
            return .failed([Failure(source: source, error: error, bytes: 0, seconds: 0, speed: nil)])
        }
        board?.track(source.label, progress)
        defer { board?.untrack(source.label) }
        do {
            do {
                try await source.fetch(into: file, timeouts: timeouts)
                try file.verify()
            } catch where file.resumedFrom > 0 && Self.meansRestart(error) {
                try file.reset()  // the earlier partial file was bad or cannot be continued here
                try await source.fetch(into: file, timeouts: timeouts)
                try file.verify()
            }
            return .won(source, file, Monotonic.seconds(since: start), progress.measuredSpeed(), earlier: [])
        } catch {
            if expectation.isResumable && !(error is VerificationError) && file.size > 0 {
                workspace.givePrefix(file.path, size: file.size)
            } else {
                unlink(file.path)
            }
            return .failed([Failure(
                source: source, error: error, bytes: progress.total, seconds: Monotonic.seconds(since: start),
                speed: progress.measuredSpeed())])
        }
    }

    /// True for the errors after which a resumed download starts over from byte 0.
    private static func meansRestart(_ error: any Error) -> Bool {
        error is VerificationError || (error as? TransferError) == .rangeNotSupported
            || (error as? TransferError) == .status(416)
    }
}
