import CurlTransfer
import Glibc

/// A file of known size fetched by several sources at once, sharing the bytes instead of each
/// fetching them all.
///
/// The IPFS sources start at once and split the file; the HTTP mirrors join one at a time when
/// the ``HedgeRule`` says IPFS is silent or slower than a mirror would be, each taking the far
/// end of what is left (a ``PieceBoard`` decides the cuts). A source that finishes its piece
/// takes over part of another's; one that sends a bad range, or fails, is dropped and its piece
/// goes to the others. The caller checks the whole file against the sync db's sha256.
struct SharedDownload: Sendable {
    /// What one source did.
    struct Contribution: Sendable {
        var source: any Source
        /// Bytes of the file it wrote.
        var used: Int64
        /// Bytes it sent in all (used or not).
        var received: Int64
        /// The error it was dropped for, if it was.
        var failure: (any Error)?
        /// Its speed, when it sent enough to say.
        var speed: Speed?
        /// The ranges it wrote.
        var ranges: [Range<Int64>]
    }

    /// One source taking part, and what was remembered of its speed.
    struct Participant: Sendable {
        var source: any Source
        var remembered: Speed?
    }

    /// Smaller packages are raced whole (by the same hedge rule): sharing would save them less
    /// than its set-up costs pacman's per-file call, and a copy fetched twice costs little.
    static let minimumSize: Int64 = 1 << 20

    let size: Int64
    /// Started at once.
    let ipfs: [Participant]
    /// Started one after another, the first when the rule says, each next when the one before failed.
    let chain: [Participant]
    let rule: HedgeRule
    let timeouts: Timeouts

    /// Fetches `ranges` of the file into `fd` (the file at `path`, `size` bytes when done);
    /// `written` hears the length of the file's complete run from byte 0 as it grows. Returns
    /// whether every byte was written, the length of that run, and what each source did.
    func run(
        ranges: [Range<Int64>], fd: Int32, path: String, board progressBoard: ProgressBoard?,
        written: @escaping @Sendable (Int64) -> Void
    ) async -> (complete: Bool, contiguous: Int64, contributions: [Contribution]) {
        let board = PieceBoard(size: size, ranges: ranges, silentAfter: rule.delay)
        let start = Monotonic.nanoseconds()
        let ends = await withTaskGroup(of: [Contribution].self) { group in
            for participant in ipfs {
                group.addTask {
                    [await take(part: participant, board: board, fd: fd, path: path, progressBoard: progressBoard, written: written)]
                }
            }
            group.addTask {
                var contributions: [Contribution] = []
                for participant in chain {
                    while !board.isComplete
                        && !rule.startsMirror(
                            elapsed: Monotonic.seconds(since: start), runners: board.ipfsRunners(now: Monotonic.nanoseconds()),
                            sharesWork: true)
                    {
                        do { try await Task.sleep(nanoseconds: 20_000_000) } catch { return contributions }
                    }
                    if board.isComplete || Task.isCancelled { break }
                    contributions.append(
                        await take(part: participant, board: board, fd: fd, path: path, progressBoard: progressBoard, written: written))
                    if board.isComplete { break }
                }
                return contributions
            }
            var all: [Contribution] = []
            for await contributions in group {
                all += contributions
                if board.isComplete { group.cancelAll() }
            }
            return all
        }
        return (board.isComplete, board.contiguous, ends)
    }

    /// One source's part: pieces until the file is complete, the source fails, or the task is cancelled.
    private func take(
        part participant: Participant, board: PieceBoard, fd: Int32, path: String, progressBoard: ProgressBoard?,
        written: @escaping @Sendable (Int64) -> Void
    ) async -> Contribution {
        let source = participant.source
        let progress = TransferProgress()
        let number = board.join(progress: progress, remembered: participant.remembered, isIPFS: source.kind.isIPFS)
        progressBoard?.track(source.label, progress)
        defer { progressBoard?.untrack(source.label) }
        var failure: (any Error)?
        while !board.isComplete && !Task.isCancelled {
            guard let (assignment, cancelling) = board.next(for: number, now: Monotonic.nanoseconds()) else {
                // Nothing worth taking now: look again soon (a holder may slow down).
                do { try await Task.sleep(nanoseconds: 50_000_000) } catch { break }
                continue
            }
            cancelling?()
            let sink = PieceSink(board: board, assignment: assignment, fd: fd, path: path, progress: progress, written: written)
            let timeouts = timeouts
            let size = size
            let transfer = Task { try await source.fetch(range: assignment.range, of: size, into: sink, timeouts: timeouts) }
            board.attach(assignment.piece) { transfer.cancel() }
            var error: (any Error)?
            do {
                try await withTaskCancellationHandler {
                    try await transfer.value
                } onCancel: {
                    transfer.cancel()
                }
            } catch let caught {
                error = caught
            }
            let closing = board.close(assignment.piece)
            if Task.isCancelled { break }
            if error == nil && closing == .complete { continue }
            // Cut to nothing while its answer was on the way, or stopped at the cut.
            if let error, Self.isStop(error) { continue }
            // A source that failed after its last byte keeps the bytes it wrote (the whole is
            // checked), but gets no more.
            failure = error ?? PieceSink.Stop.wrongLength(expected: Int64(assignment.range.count), actual: 0)
            board.fail(number)
            break
        }
        return Contribution(
            source: source, used: board.used[number], received: progress.total, failure: failure,
            speed: progress.measuredSpeed(), ranges: board.written(by: number))
    }

    /// True for the ends of a transfer that the sink or the board caused, not the source.
    private static func isStop(_ error: any Error) -> Bool {
        (error as? PieceSink.Stop) == .reached || error is CancellationError || (error as? TransferError) == .cancelled
    }
}

