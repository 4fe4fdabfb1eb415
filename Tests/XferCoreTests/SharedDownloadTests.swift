import Glibc
import Synchronization
import Testing
@testable import XferCore

/// The speed-aware race: the hedge rule, the board that cuts pieces, the remembered rates and
/// the log's flags. Throttled gateways and mirrors are exercised end to end
/// (Tests/e2e/test_xfer_speed.py).
@Suite struct SharedDownloadTests {
    let mirror = Speed(bytesPerSecond: 10_000_000, firstByte: 0.05)

    func runner(rate: Double?, remembered: Speed? = nil, silence: Double = 0, remaining: Int64? = 4_000_000) -> HedgeRule.Runner {
        HedgeRule.Runner(rate: rate, remembered: remembered, silence: silence, remaining: remaining)
    }

    @Test func aSilentIPFSStartsTheMirrorAtTheDelayAndNotBefore() {
        let rule = HedgeRule(delay: 1, mirror: mirror)
        #expect(!rule.startsMirror(elapsed: 0.5, runners: [runner(rate: nil, silence: 0.5)], sharesWork: true))
        #expect(rule.startsMirror(elapsed: 1, runners: [runner(rate: nil, silence: 1)], sharesWork: true))
        #expect(rule.startsMirror(elapsed: 0, runners: [], sharesWork: true), "no IPFS source left")
    }

    @Test func aSlowIPFSStartsTheMirrorFromTheDelayOn() {
        let rule = HedgeRule(delay: 1, mirror: mirror)
        let slow = runner(rate: 200_000)
        #expect(!rule.startsMirror(elapsed: 0.6, runners: [slow], sharesWork: true), "measured, but before the delay")
        #expect(rule.startsMirror(elapsed: 1.1, runners: [slow], sharesWork: true))
        // Fast enough: 4 MB at 20 MB/s beats the mirror's 0.05 s + 0.4 s.
        #expect(!rule.startsMirror(elapsed: 5, runners: [runner(rate: 20_000_000)], sharesWork: true))
        // Two IPFS sources sharing the work add up; racing, the faster counts.
        let halves = [runner(rate: 6_000_000), runner(rate: 6_000_000)]
        #expect(!rule.startsMirror(elapsed: 2, runners: halves, sharesWork: true))
        #expect(rule.startsMirror(elapsed: 2, runners: halves, sharesWork: false))
    }

    @Test func aRememberedSlowIPFSStartsTheMirrorAtOnce() {
        let rule = HedgeRule(delay: 3, mirror: mirror)
        let slow = runner(rate: nil, remembered: Speed(bytesPerSecond: 50_000, firstByte: 0.1))
        #expect(rule.startsMirror(elapsed: 0, runners: [slow], sharesWork: true))
        let fast = runner(rate: nil, remembered: Speed(bytesPerSecond: 50_000_000, firstByte: 0.01))
        #expect(!rule.startsMirror(elapsed: 0, runners: [fast], sharesWork: true))
        // One IPFS source known, another not: no early decision.
        #expect(!rule.startsMirror(elapsed: 0, runners: [slow, runner(rate: nil)], sharesWork: true))
    }

    @Test func withoutASizeTheMirrorJoinsWhenItIsTwiceAsFast() {
        let rule = HedgeRule(delay: 1, mirror: mirror)
        #expect(rule.startsMirror(elapsed: 1, runners: [runner(rate: 4_000_000, remaining: nil)], sharesWork: false))
        #expect(!rule.startsMirror(elapsed: 1, runners: [runner(rate: 6_000_000, remaining: nil)], sharesWork: false))
    }

    /// A progress that received `bytes` spread over the last `seconds`, ending now.
    func progress(bytes: Int, over seconds: Double) -> TransferProgress {
        let progress = TransferProgress()
        let steps = 20
        for _ in 0..<steps {
            usleep(UInt32(seconds / Double(steps) * 1_000_000))
            progress.add(bytes / steps)
        }
        return progress
    }

    @Test func aNewcomerTakesTheFarEndCutWhereBothFinishTogether() throws {
        let board = PieceBoard(size: 4_000_000, ranges: [0..<4_000_000], silentAfter: 1)
        let slow = progress(bytes: 60_000, over: 0.3)  // ~200 KB/s
        let gateway = board.join(progress: slow, remembered: nil, isIPFS: true)
        let first = try #require(board.next(for: gateway, now: Monotonic.nanoseconds()))
        #expect(first.0.range == 0..<4_000_000, "a free range is taken whole")
        let (offset, allowed) = board.reserve(first.0.piece, count: 100_000)
        #expect(offset == 0 && allowed == 100_000)
        #expect(!board.commit(first.0.piece, count: allowed))
        let mirrorNumber = board.join(progress: TransferProgress(), remembered: mirror, isIPFS: false)
        let (taken, cancelling) = try #require(board.next(for: mirrorNumber, now: Monotonic.nanoseconds()))
        #expect(cancelling == nil)
        #expect(taken.range.upperBound == 4_000_000)
        // The gateway keeps what it sends while the mirror starts and fetches the rest:
        // (0.05 s + ~0.39 s) at ~200 KB/s, about 88 KB past its 100 KB.
        #expect(taken.range.lowerBound > 150_000 && taken.range.lowerBound < 260_000, "cut at \(taken.range.lowerBound)")
        #expect(board.remaining == 4_000_000 - 100_000)
        #expect(board.contiguous == 100_000)
        // The gateway's transfer stops at the cut: what it sends past it is refused.
        let past = board.reserve(first.0.piece, count: Int(taken.range.lowerBound))
        #expect(past.offset == 100_000 && Int64(past.allowed) == taken.range.lowerBound - 100_000)
        #expect(board.commit(first.0.piece, count: past.allowed), "the near piece is done")
        #expect(board.close(first.0.piece) == .complete)
    }

    @Test func aSilentHolderLosesItsWholePieceAndIsCancelled() throws {
        let board = PieceBoard(size: 1_000_000, ranges: [0..<1_000_000], silentAfter: 1)
        let hung = TransferProgress()
        let gateway = board.join(progress: hung, remembered: nil, isIPFS: true)
        let first = try #require(board.next(for: gateway, now: Monotonic.nanoseconds()))
        let cancelled = Flag()
        board.attach(first.0.piece) { cancelled.set() }
        let mirrorNumber = board.join(progress: TransferProgress(), remembered: mirror, isIPFS: false)
        let later = Monotonic.nanoseconds() + UInt64(board.silentAfter * 1e9) + 1
        let (taken, cancelling) = try #require(board.next(for: mirrorNumber, now: later))
        #expect(taken.range == 0..<1_000_000)
        cancelling?()
        #expect(cancelled.isSet)
        #expect(board.close(first.0.piece) == .complete, "nothing of it is left to write")
        let (offset, allowed) = board.reserve(taken.piece, count: 1_000_000)
        #expect(offset == 0 && allowed == 1_000_000)
        #expect(board.commit(taken.piece, count: allowed))
        #expect(board.isComplete && board.contiguous == 1_000_000)
        #expect(board.used == [0, 1_000_000])
    }

    @Test func aShortPieceFreesItsRestForTheOthers() throws {
        let board = PieceBoard(size: 100_000, ranges: [10_000..<100_000], silentAfter: 1)
        let one = board.join(progress: TransferProgress(), remembered: nil, isIPFS: true)
        let piece = try #require(board.next(for: one, now: Monotonic.nanoseconds())).0
        _ = board.commit(piece.piece, count: board.reserve(piece.piece, count: 30_000).allowed)
        #expect(board.close(piece.piece) == .short)
        board.fail(one)
        #expect(board.next(for: one, now: Monotonic.nanoseconds()) == nil, "a failed participant gets no more")
        let two = board.join(progress: TransferProgress(), remembered: nil, isIPFS: false)
        #expect(try #require(board.next(for: two, now: Monotonic.nanoseconds())).0.range == 40_000..<100_000)
        #expect(board.written(by: one) == [10_000..<40_000])
        #expect(board.contiguous == 40_000)
    }

    @Test func ratesRoundTripSmoothAndAge() {
        var rates = SourceRates(text: "100 200000 15 gateway http://g\nnot a line\n100 0 5 mirror http://zero\n")
        #expect(rates.records.count == 1)
        #expect(rates.speed(of: "gateway http://g", now: 200) == Speed(bytesPerSecond: 200_000, firstByte: 0.015))
        rates.record(Speed(bytesPerSecond: 400_000, firstByte: 0.005), for: "gateway http://g", now: 300)
        #expect(rates.speed(of: "gateway http://g", now: 300) == Speed(bytesPerSecond: 300_000, firstByte: 0.01))
        rates.record(mirror, for: "mirror http://m", now: 300)
        #expect(SourceRates(text: rates.text[...]) == rates)
        #expect(rates.speed(of: "mirror http://m", now: 300 + SourceRates.maximumAge + 1) == nil, "too old")
    }

    @Test func theLogCarriesWastedBytesAndStatsSumThemPerSource() throws {
        let entry = TransferLogEntry(
            time: 1, file: "a.pkg", bytes: 10, seconds: 0.5, kind: .gateway, source: "gateway http://g", wasted: 7)
        #expect(entry.line == "1\ta.pkg\t10\t0.500\tgateway\tgateway http://g\twasted=7\n")
        #expect(TransferLogEntry(line: entry.line.dropLast()) == entry)
        #expect(TransferLogEntry(line: "1\ta\t1\t0.1\tmirror\tm\tbogus") == nil)
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path)
        try state.log(entry)
        try state.log(TransferLogEntry(time: 1, file: "a.pkg", bytes: 90, seconds: 0.5, kind: .mirror, source: "mirror http://m"))
        try state.log(TransferLogEntry(time: 2, file: "b.pkg", bytes: 0, seconds: 0.5, kind: .gateway, source: "gateway http://g", wasted: 3))
        try state.updateRates([("gateway http://g", Speed(bytesPerSecond: 1234, firstByte: 0.02))], now: Int64(time(nil)))
        let stats = TransferStats(state: state)
        #expect(stats.files[.gateway] == 1 && stats.bytes[.gateway] == 10)
        #expect(stats.text.contains("  gateway http://g: served 10 bytes in 1 files, wasted 10 bytes, 1234 B/s, first byte 20 ms\n"))
        #expect(stats.text.contains("  mirror http://m: served 90 bytes in 1 files, wasted 0 bytes\n"))
        #expect(stats.prometheus.contains("ipfs_xfer_source_wasted_bytes_total{source=\"gateway http://g\"} 10"))
    }
}

extension SharedDownloadTests {
    /// A 1.5 MB package whose copy under the "mount" (a plain directory) has one byte flipped
    /// near its end, two file:// mirrors with the right one, and a gateway refusing connections.
    @Test func aWrongPieceIsFetchedAgainFromTheOthersAndItsSourceBlamed() async throws {
        let payload = pseudoRandomBytes(1_500_000, seed: 11)
        var corrupt = payload
        corrupt[1_400_000] ^= 0x01
        let suite = FetchJobTests()
        // HedgeDelay 30 s: the mount sends it all, and the mirrors come in only to mend it.
        let fixture = try suite.fixture(payload: payload, mountCopy: corrupt)
        let config = fixture.config
        let output = fixture.output
        let outcome = try await suite.job(fixture).run()
        #expect(try FileSystem.readBytes(output) == payload)
        #expect(outcome.kind == .mirror)
        let state = try StateDirectory(path: config.stateDir)
        #expect(state.loadHealth().isDown("mount \(config.mountPoint!)", now: Int64(time(nil))))
        let lines = try FileSystem.readText(config.stateDir + "/transfers.log").split(separator: "\n")
            .compactMap(TransferLogEntry.init(line:))
        let mount = try #require(lines.first { $0.kind == .mount })
        #expect(mount.bytes == 0 && mount.wasted == Int64(payload.count), "all it sent was replaced")
        #expect(lines.filter { $0.kind == .mirror }.map(\.bytes).reduce(0, +) == Int64(payload.count))
        #expect(FileSystem.listDirectory(fixture.cache).sorted() == [".keep", "\(fixture.name).part"])
    }
}

/// A flag a cancel handler sets.
private final class Flag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}
