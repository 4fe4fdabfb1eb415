import Glibc

extension FetchJob {
    /// Fetches a package of known size and sha256 from the IPFS sources and, as the hedge rule
    /// says, the mirrors, sharing its bytes between them (``SharedDownload``). When the whole
    /// does not match the sha256, each contributor's ranges are fetched again from the others
    /// in turn (IPFS sources first) until it does; the one whose bytes were replaced is blamed.
    /// Nil when that does not work out either: the caller then races for the whole file.
    func fetchShared(
        record: PackageRecord, ipfs: [any Source], chain: [any Source], rates: SourceRates, now: Int64,
        workspace: Workspace, board: ProgressBoard?, fileName: String
    ) async -> Fetched? {
        let start = Monotonic.nanoseconds()
        let path = workspace.temporaryPath()
        var prefixSize: Int64 = 0
        if let prefix = workspace.takePrefix() {
            if rename(prefix, path) == 0 { prefixSize = FileSystem.fileSize(path) ?? 0 } else { unlink(prefix) }
        }
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let remembered = { (source: any Source) in
            SharedDownload.Participant(source: source, remembered: rates.speed(of: source.healthKey, now: now))
        }
        let mirrorSpeed = chain.first.flatMap { rates.speed(of: $0.healthKey, now: now) } ?? Speed.assumedMirror
        let timeouts = Timeouts(connect: config.connectTimeout, stall: config.stallTimeout)
        let download = SharedDownload(
            size: record.size, ipfs: ipfs.map(remembered), chain: chain.map(remembered),
            rule: HedgeRule(delay: config.hedgeDelay, mirror: mirrorSpeed), timeouts: timeouts)
        guard let hasher = try? FileHasher(fd: fd, path: path) else { return nil }
        hasher.advance(to: prefixSize)
        workspace.markValid(path, upTo: prefixSize)  // an interrupt keeps the run from byte 0 only
        let (complete, contiguous, first) = await download.run(
            ranges: [prefixSize..<record.size], fd: fd, path: path, board: board,
            written: { contiguous in
                hasher.advance(to: contiguous)
                workspace.markValid(path, upTo: contiguous)
            })
        var contributions = first
        var blamed: [String] = []
        guard complete else {
            hasher.cancel()
            // The written run from byte 0 is the partial file to resume from; the rest goes.
            if contiguous > 0 && truncate(path, off_t(contiguous)) == 0 {
                workspace.givePrefix(path, size: contiguous)
            } else {
                unlink(path)
            }
            return Fetched(
                delivery: nil, healthChanges: Self.healthChanges(contributions, blamed: []),
                speeds: Self.speeds(contributions), reasons: Self.reasons(contributions),
                rangeRefused: contributions.contains { contribution in
                    contribution.failure.map { ($0 as? PieceSink.Stop).map { $0 != .reached } ?? false } ?? false
                })
        }
        var verified = (try? hasher.finish(size: record.size)) == record.sha256
        if !verified {
            // Someone sent wrong bytes: replace each contributor's ranges with the others' until the hash matches.
            let suspects = contributions.filter { $0.used > 0 }.sorted { $0.source.kind.isIPFS && !$1.source.kind.isIPFS }
            for suspect in suspects where !verified {
                let others = (ipfs + chain.prefix(2)).filter { candidate in
                    candidate.healthKey != suspect.source.healthKey
                        && !contributions.contains { $0.source.healthKey == candidate.healthKey && $0.failure != nil }
                }
                guard !others.isEmpty else { continue }
                let again = SharedDownload(
                    size: record.size, ipfs: others.map(remembered), chain: [],
                    rule: HedgeRule(delay: config.hedgeDelay, mirror: mirrorSpeed), timeouts: timeouts)
                let (done, _, more) = await again.run(ranges: suspect.ranges, fd: fd, path: path, board: board) { _ in }
                contributions += more
                guard done, let check = try? FileHasher(fd: fd, path: path) else { continue }
                verified = (try? check.finish(size: record.size)) == record.sha256
                if verified { blamed.append(suspect.source.healthKey) }
            }
        }
        guard verified else {
            warn("\(fileName): the pieces its sources sent do not make the sync db's sha256; fetching it whole")
            unlink(path)
            return nil
        }
        let seconds = Monotonic.seconds(since: start)
        return Fetched(
            delivery: Self.delivery(
                path: path, contributions: contributions, blamed: blamed, size: record.size, resumedFrom: prefixSize,
                seconds: seconds, fileName: fileName, now: now),
            healthChanges: Self.healthChanges(contributions, blamed: blamed), speeds: Self.speeds(contributions),
            reasons: [])
    }

    /// The verified file as the job's output: the source that sent the most names it, and each
    /// source gets a log line with what it sent and what was wasted (the most bytes last).
    private static func delivery(
        path: String, contributions: [SharedDownload.Contribution], blamed: [String], size: Int64, resumedFrom: Int64,
        seconds: Double, fileName: String, now: Int64
    ) -> Delivery {
        // One line per source, summed over the passes it took part in.
        var totals: [(source: any Source, used: Int64, received: Int64)] = []
        for contribution in contributions where contribution.received > 0 {
            if let index = totals.firstIndex(where: { $0.source.healthKey == contribution.source.healthKey }) {
                totals[index].used += contribution.used
                totals[index].received += contribution.received
            } else {
                totals.append((contribution.source, contribution.used, contribution.received))
            }
        }
        for index in totals.indices where blamed.contains(totals[index].source.healthKey) { totals[index].used = 0 }
        totals.sort { $0.used < $1.used }
        let main = totals.last
        let entries = totals.map { total in
            TransferLogEntry(
                time: now, file: fileName, bytes: total.used, seconds: seconds, kind: total.source.kind,
                source: total.source.label, wasted: max(0, total.received - total.used))
        }
        let outcome = Outcome(
            kind: main?.source.kind ?? .mirror, source: main?.source.label ?? "resumed", bytes: size, seconds: seconds,
            resumedFrom: resumedFrom)
        return Delivery(path: path, outcome: outcome, logEntries: entries)
    }

    /// Sources that failed, were blamed or were silent while a mirror delivered are down; the
    /// ones whose bytes were used are healthy.
    private static func healthChanges(_ contributions: [SharedDownload.Contribution], blamed: [String]) -> [HealthChange] {
        var changes: [HealthChange] = []
        let mirrorSent = contributions.contains { $0.source.kind == .mirror && $0.used > 0 }
        for contribution in contributions {
            let key = contribution.source.healthKey
            if blamed.contains(key) || contribution.failure.map({ isSourceFailure($0, kind: contribution.source.kind) }) == true
                || (contribution.source.kind.isIPFS && contribution.received == 0 && mirrorSent) {
                changes.append(.failed(key))
            } else if contribution.used > 0 {
                changes.append(.succeeded(key))
            }
        }
        return changes
    }

    private static func speeds(_ contributions: [SharedDownload.Contribution]) -> [(key: String, speed: Speed)] {
        contributions.compactMap { contribution in contribution.speed.map { (contribution.source.healthKey, $0) } }
    }

    private static func reasons(_ contributions: [SharedDownload.Contribution]) -> [String] {
        contributions.compactMap { contribution in contribution.failure.map { "\(contribution.source.label): \($0)" } }
    }
}
