import Glibc
import IPFSData
import Synchronization

/// A big package fetched in segments from several sources at once, each segment checked
/// against the leaf blocks of the file's DAG before it is written.
///
/// The file is split along its UnixFS leaves into segments of about ``segmentSize`` bytes. Every
/// source (trusted gateways and mirrors by byte range, trustless gateways by raw blocks) takes
/// the next segment as soon as it is free, so faster sources take more. A source that sends a
/// segment that does not match the DAG is dropped and the segment goes to another; a source
/// that fails twice is dropped too. When no segment is left to start, idle sources also take
/// the ones still running elsewhere, and the first copy wins, so one slow source cannot hold up
/// the end. The finished file is checked against the sync db's sha256 like any other.
struct SegmentedDownload: Sendable {
    /// Why the segmented download gave up (the race then fetches the file whole).
    enum Failure: Error, CustomStringConvertible, Equatable {
        case incomplete(reasons: [String])

        var description: String {
            switch self {
            case .incomplete(let reasons): "segmented download incomplete (\(reasons.joined(separator: "; ")))"
            }
        }
    }

    /// What each source contributed.
    struct Report: Sendable {
        var bytes: [(source: RangeSource, bytes: Int64)]
        var dropped: [(source: RangeSource, reason: String)]
    }

    /// About how many bytes one segment holds (whole leaves).
    static let segmentSize: UInt64 = 4 << 20

    let layout: FileLayout
    let sources: [RangeSource]
    let timeouts: Timeouts
    let progress: TransferProgress

    /// Consecutive runs of leaves of about ``segmentSize`` bytes.
    var segments: [ArraySlice<FileLayout.Leaf>] {
        var segments: [ArraySlice<FileLayout.Leaf>] = []
        var start = layout.leaves.startIndex
        var bytes: UInt64 = 0
        for index in layout.leaves.indices {
            bytes += layout.leaves[index].size
            if bytes >= Self.segmentSize || index == layout.leaves.index(before: layout.leaves.endIndex) {
                segments.append(layout.leaves[start...index])
                start = index + 1
                bytes = 0
            }
        }
        return segments
    }

    /// Fetches the whole file into `fd` (opened for writing, empty).
    func run(into fd: Int32, path: String) async throws -> Report {
        let segments = self.segments
        let board = SegmentBoard(count: segments.count, sources: sources.count)
        let fileSize = layout.size
        let timeouts = timeouts
        let progress = progress
        let dropped = await withTaskGroup(of: (Int, String)?.self) { group in
            for (number, source) in sources.enumerated() {
                group.addTask {
                    var errors: [String] = []
                    var held: Int?
                    defer { if let held { board.giveBack(held) } }
                    while let index = board.next(excluding: held) {
                        held = index
                        let segment = segments[index]
                        let bytes: [UInt8]
                        do {
                            bytes = try await source.fetch(segment, fileSize: fileSize, timeouts: timeouts)
                        } catch {
                            if Task.isCancelled { return nil }
                            board.giveBack(index)
                            held = nil
                            errors.append("\(error)")
                            if errors.count >= 2 { return (number, errors.joined(separator: ", ")) }
                            continue
                        }
                        held = nil
                        guard Self.check(bytes, against: segment) else {
                            board.giveBack(index)
                            return (number, "sent bytes that do not match the file's blocks")
                        }
                        if board.claim(index) {
                            let offset = off_t(segment.first!.offset)
                            let ok = bytes.withUnsafeBytes { buffer in
                                var done = 0
                                while done < buffer.count {
                                    let count = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, offset + off_t(done))
                                    if count < 0 && errno == EINTR { continue }
                                    guard count > 0 else { return false }
                                    done += count
                                }
                                return true
                            }
                            guard ok else {
                                board.fail("write \(path): \(SystemError("pwrite"))")
                                return nil
                            }
                            progress.add(bytes.count)
                            board.credit(number, bytes: Int64(bytes.count))
                        }
                    }
                    return nil
                }
            }
            var dropped: [(Int, String)] = []
            for await result in group {
                if let result { dropped.append(result) }
            }
            return dropped
        }
        let report = Report(
            bytes: board.credits.enumerated().map { (sources[$0.offset], $0.element) },
            dropped: dropped.map { (sources[$0.0], $0.1) })
        guard board.isComplete else {
            var reasons = report.dropped.map { "\($0.source.label): \($0.reason)" }
            if let failure = board.failure { reasons.append(failure) }
            if Task.isCancelled { reasons.append("cancelled") }
            throw Failure.incomplete(reasons: reasons.isEmpty ? ["no source left"] : reasons)
        }
        return report
    }

    /// True when `bytes` are exactly the data of the leaves of `segment`.
    static func check(_ bytes: [UInt8], against segment: ArraySlice<FileLayout.Leaf>) -> Bool {
        guard let first = segment.first else { return bytes.isEmpty }
        return bytes.withUnsafeBytes { buffer in
            var position = 0
            for leaf in segment {
                let start = Int(leaf.offset - first.offset)
                let end = start + Int(leaf.size)
                guard end <= buffer.count, leaf.matches(UnsafeRawBufferPointer(rebasing: buffer[start..<end])) else {
                    return false
                }
                position = end
            }
            return position == buffer.count
        }
    }
}

/// Which segments are waiting, running (and how often) and done; shared by the sources' tasks.
final class SegmentBoard: Sendable {
    private struct State {
        var waiting: [Int]
        var running: [Int: Int] = [:]
        var done: Set<Int> = []
        var failure: String?
        var credits: [Int64]
    }

    private let state: Mutex<State>
    private let count: Int

    init(count: Int, sources: Int) {
        self.count = count
        state = Mutex(State(waiting: Array(0..<count), credits: Array(repeating: 0, count: sources)))
    }

    /// Counts bytes written from source number `source`.
    func credit(_ source: Int, bytes: Int64) {
        state.withLock { $0.credits[source] += bytes }
    }

    /// Bytes written from each source, by number.
    var credits: [Int64] { state.withLock { $0.credits } }

    /// The next segment for a source: a waiting one, or else one running elsewhere (not `held`),
    /// the least duplicated first; nil when everything is done or the download failed.
    func next(excluding held: Int?) -> Int? {
        state.withLock { state in
            guard state.failure == nil, state.done.count < count else { return nil }
            if !state.waiting.isEmpty {
                let index = state.waiting.removeFirst()
                state.running[index, default: 0] += 1
                return index
            }
            let candidates = state.running.filter { $0.key != held && !state.done.contains($0.key) }
            guard let index = candidates.min(by: { ($0.value, $0.key) < ($1.value, $1.key) })?.key else { return nil }
            state.running[index, default: 0] += 1
            return index
        }
    }

    /// Returns a segment the source could not deliver: waiting again unless another copy runs.
    func giveBack(_ index: Int) {
        state.withLock { state in
            let holders = (state.running[index] ?? 1) - 1
            state.running[index] = holders > 0 ? holders : nil
            if holders <= 0 && !state.done.contains(index) && !state.waiting.contains(index) {
                state.waiting.insert(index, at: 0)
            }
        }
    }

    /// Marks a delivered segment done; true for the first copy, which is the one written.
    func claim(_ index: Int) -> Bool {
        state.withLock { state in
            let holders = (state.running[index] ?? 1) - 1
            state.running[index] = holders > 0 ? holders : nil
            return state.done.insert(index).inserted
        }
    }

    /// Stops the download for a reason that is not a source's.
    func fail(_ reason: String) {
        state.withLock { $0.failure = $0.failure ?? reason }
    }

    var failure: String? { state.withLock { $0.failure } }
    var isComplete: Bool { state.withLock { $0.done.count == count && $0.failure == nil } }
}
