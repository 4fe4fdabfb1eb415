import Synchronization

/// Who fetches which bytes of a file that several sources fetch at once, and how fast each goes.
///
/// The bytes still to fetch start as free ranges. A source that asks for work takes a free range
/// whole; when none is left it takes the far end of the piece expected to finish last, cut where
/// the two are expected to finish together (its own first-byte time and rate against the
/// holder's current rate). The holder keeps the near end and stops there. A cut is made only
/// when it saves at least ``minimumGain`` seconds and cuts off ``minimumCut`` bytes or more. A
/// silent holder loses its whole piece and its transfer is cancelled.
final class PieceBoard: Sendable {
    /// A piece handed to a participant: its number and the bytes it is to fetch.
    struct Assignment: Sendable {
        var piece: Int
        var range: Range<Int64>
    }

    /// How a piece's transfer ended.
    enum Closing: Sendable, Equatable {
        /// Every byte of it (as cut) was written.
        case complete
        /// It stopped short; the bytes left are free again.
        case short
    }

    /// A cut must save at least this many seconds.
    static let minimumGain: Double = 0.05
    /// No piece is cut smaller than this.
    static let minimumCut: Int64 = 4 << 10

    private struct Piece {
        var participant: Int
        var start: Int64
        /// The end of the bytes handed to the writer (not necessarily written yet).
        var reserved: Int64
        /// The end of the bytes written.
        var position: Int64
        var limit: Int64
        var isOpen = true
        var cancel: (@Sendable () -> Void)?
    }

    private struct Participant {
        var progress: TransferProgress
        var remembered: Speed?
        var isIPFS: Bool
        var used: Int64 = 0
        var failed = false
    }

    private struct State {
        var free: [Range<Int64>]
        var pieces: [Piece] = []
        var participants: [Participant] = []
    }

    /// The file's size.
    let size: Int64
    /// A participant without a first byte for this long counts as silent (rate 0): the hedge
    /// delay, after which the hedge rule calls a source silent too.
    let silentAfter: Double
    private let state: Mutex<State>

    /// A board for the `ranges` of a file of `size` bytes still to fetch.
    init(size: Int64, ranges: [Range<Int64>], silentAfter: Double) {
        self.size = size
        self.silentAfter = silentAfter
        state = Mutex(State(free: ranges.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }))
    }

    /// Adds a participant; its number is what it asks for work with.
    func join(progress: TransferProgress, remembered: Speed?, isIPFS: Bool) -> Int {
        state.withLock { state in
            state.participants.append(Participant(progress: progress, remembered: remembered, isIPFS: isIPFS))
            return state.participants.count - 1
        }
    }

    /// Work for `participant`: a free range, or the far end of the piece expected to finish
    /// last; nil when there is nothing worth taking now. A holder that lost its whole piece is
    /// returned too, to be cancelled.
    func next(for participant: Int, now: UInt64) -> (Assignment, cancelling: (@Sendable () -> Void)?)? {
        state.withLock { state in
            guard !state.participants[participant].failed else { return nil }
            if !state.free.isEmpty {
                let range = state.free.removeFirst()
                return (Self.open(range, for: participant, in: &state), nil)
            }
            let thief = state.participants[participant]
            let latency = thief.progress.firstByteSeconds ?? thief.remembered?.firstByte ?? Speed.assumedMirror.firstByte
            // Its pace while it was sending (an idle newcomer's last second is silence), or what
            // is expected of it before its first byte.
            let thiefRate = thief.progress.rate(now: max(thief.progress.lastByteTime, thief.progress.startTime))
                ?? Self.expectedRate(of: thief)
            guard thiefRate > 0 else { return nil }
            var best: (index: Int, cut: Int64, finish: Double)?
            for (index, piece) in state.pieces.enumerated()
            where piece.isOpen && piece.participant != participant && piece.reserved < piece.limit {
                let holderRate = rate(of: state.participants[piece.participant], now: now)
                let left = Double(piece.limit - piece.reserved)
                let finish = holderRate > 0 ? left / holderRate : .infinity
                let cut: Int64
                if holderRate <= 0 {
                    cut = piece.reserved
                } else {
                    // Where the holder (from `reserved`, at its rate) and the newcomer (from the
                    // end backwards, after its first byte) are expected to meet.
                    let meet = (latency + Double(piece.limit) / thiefRate + Double(piece.reserved) / holderRate)
                        / (1 / holderRate + 1 / thiefRate)
                    cut = min(piece.limit, max(piece.reserved, Int64(meet.rounded(.up))))
                    let saved = finish - Double(cut - piece.reserved) / holderRate
                    guard piece.limit - cut >= Self.minimumCut, saved >= Self.minimumGain else { continue }
                }
                if best == nil || finish > best!.finish { best = (index, cut, finish) }
            }
            guard let best else { return nil }
            let limit = state.pieces[best.index].limit
            state.pieces[best.index].limit = best.cut
            let holder = state.pieces[best.index]
            let cancelling = holder.reserved == holder.limit ? holder.cancel : nil
            return (Self.open(best.cut..<limit, for: participant, in: &state), cancelling)
        }
    }

    private static func open(_ range: Range<Int64>, for participant: Int, in state: inout State) -> Assignment {
        state.pieces.append(Piece(
            participant: participant, start: range.lowerBound, reserved: range.lowerBound, position: range.lowerBound,
            limit: range.upperBound))
        return Assignment(piece: state.pieces.count - 1, range: range)
    }

    /// A participant's rate now: measured over the last second, else remembered, else the
    /// assumed mirror's; 0 for one silent since its start.
    private func rate(of participant: Participant, now: UInt64) -> Double {
        if let measured = participant.progress.rate(now: now) { return measured }
        if participant.progress.firstByteSeconds == nil
            && Double(now &- participant.progress.startTime) / 1e9 >= silentAfter {
            return 0
        }
        return Self.expectedRate(of: participant)
    }

    /// What a participant is expected to do before it is measured.
    private static func expectedRate(of participant: Participant) -> Double {
        participant.remembered?.bytesPerSecond ?? Speed.assumedMirror.bytesPerSecond
    }

    /// Registers how to cancel a piece's transfer; cancels at once when it has already lost it all.
    func attach(_ piece: Int, cancel: @escaping @Sendable () -> Void) {
        let lost = state.withLock { state in
            state.pieces[piece].cancel = cancel
            return state.pieces[piece].reserved >= state.pieces[piece].limit
        }
        if lost { cancel() }
    }

    /// Hands out where the next `count` received bytes of `piece` go: the offset, and how many
    /// of them still belong to the piece (the rest are past its end).
    func reserve(_ piece: Int, count: Int) -> (offset: Int64, allowed: Int) {
        state.withLock { state in
            let offset = state.pieces[piece].reserved
            let allowed = Int(max(0, min(Int64(count), state.pieces[piece].limit - offset)))
            state.pieces[piece].reserved += Int64(allowed)
            return (offset, allowed)
        }
    }

    /// Records that `count` reserved bytes of `piece` are written; true when the piece is done.
    func commit(_ piece: Int, count: Int) -> Bool {
        state.withLock { state in
            state.pieces[piece].position += Int64(count)
            state.participants[state.pieces[piece].participant].used += Int64(count)
            return state.pieces[piece].position >= state.pieces[piece].limit
        }
    }

    /// Ends a piece's transfer: the bytes it did not write are free again.
    func close(_ piece: Int) -> Closing {
        state.withLock { state in
            state.pieces[piece].isOpen = false
            state.pieces[piece].cancel = nil
            let written = state.pieces[piece].position
            let limit = state.pieces[piece].limit
            state.pieces[piece].reserved = written
            state.pieces[piece].limit = written
            guard written < limit else { return .complete }
            state.free.append(written..<limit)
            state.free.sort { $0.lowerBound < $1.lowerBound }
            return .short
        }
    }

    /// Takes a participant out for good (its source failed).
    func fail(_ participant: Int) {
        state.withLock { $0.participants[participant].failed = true }
    }

    /// True when every byte is written.
    var isComplete: Bool {
        state.withLock { state in state.free.isEmpty && state.pieces.allSatisfy { $0.position >= $0.limit } }
    }

    /// The length of the written run from byte 0.
    var contiguous: Int64 {
        state.withLock { state in
            var gap = state.free.first?.lowerBound ?? size
            for piece in state.pieces where piece.position < piece.limit { gap = min(gap, piece.position) }
            return gap
        }
    }

    /// Bytes not written yet.
    var remaining: Int64 {
        state.withLock { state in
            var left: Int64 = 0
            for range in state.free { left += range.upperBound - range.lowerBound }
            for piece in state.pieces { left += piece.limit - piece.position }
            return left
        }
    }

    /// The IPFS participants still in, as the hedge rule sees them (the bytes left are the file's).
    func ipfsRunners(now: UInt64) -> [HedgeRule.Runner] {
        let left = remaining
        return state.withLock { state in
            state.participants.filter { $0.isIPFS && !$0.failed }.map { participant in
                HedgeRule.Runner(progress: participant.progress, remembered: participant.remembered, remaining: left, now: now)
            }
        }
    }

    /// The bytes each participant wrote, by number.
    var used: [Int64] { state.withLock { $0.participants.map(\.used) } }

    /// The ranges `participant` wrote.
    func written(by participant: Int) -> [Range<Int64>] {
        state.withLock { state in
            state.pieces.filter { $0.participant == participant && $0.position > $0.start }.map { $0.start..<$0.position }
        }
    }
}
