import CurlTransfer

extension FetchJob {
    /// Races for the whole file (``FetchRace``): files of unknown size or hash, packages under
    /// ``SharedDownload/minimumSize``, and what a shared download could not finish. A package no
    /// sync db lists is flagged `unverified` on the line of the source that served it.
    func fetchWhole(
        ipfs: [any Source], chain: [any Source], expectation: Expectation, isUnverified: Bool, rates: SourceRates,
        now: Int64, workspace: Workspace, board: ProgressBoard?, fileName: String
    ) async -> Fetched {
        let mirror = chain.first { $0.kind == .mirror }.flatMap { rates.speed(of: $0.healthKey, now: now) }
        let race = FetchRace(
            ipfs: ipfs.map { ($0, rates.speed(of: $0.healthKey, now: now)) }, chain: chain, expectation: expectation,
            workspace: workspace, timeouts: Timeouts(connect: config.connectTimeout, stall: config.stallTimeout),
            rule: HedgeRule(delay: config.hedgeDelay, mirror: mirror ?? Speed.assumedMirror), board: board)
        let result = await race.run()
        let answers = result.failures.filter { !$0.wasCancelled }
        var fetched = Fetched(
            healthChanges: Self.healthChanges(result), speeds: result.speeds,
            reasons: answers.map { "\($0.source.label): \($0.error)" })
        fetched.isNowhere = !answers.isEmpty && answers.allSatisfy { ($0.error as? TransferError) == .status(404) }
        fetched.delivery = result.winner.map { winner in
            let outcome = Outcome(
                kind: winner.source.kind, source: winner.source.label, bytes: winner.file.size,
                seconds: winner.seconds, resumedFrom: winner.file.resumedFrom)
            // Losers' bytes first, the winner's line last.
            let wasted = result.failures.filter { $0.bytes > 0 }.map { failure in
                TransferLogEntry(
                    time: now, file: fileName, bytes: 0, seconds: outcome.seconds, kind: failure.source.kind,
                    source: failure.source.label, wasted: failure.bytes)
            }
            let served = TransferLogEntry(
                time: now, file: fileName, bytes: outcome.bytes - outcome.resumedFrom, seconds: outcome.seconds,
                kind: outcome.kind, source: outcome.source, unverified: isUnverified)
            return Delivery(
                path: winner.file.path, outcome: outcome, logEntries: wasted + [served],
                databaseRecords: winner.file.databaseRecords)
        }
        return fetched
    }

    /// What the race says about each source's health.
    static func healthChanges(_ result: FetchRace.Result) -> [HealthChange] {
        var changes: [HealthChange] = []
        let mirrorWon = result.winner?.source.kind == .mirror
        for failure in result.failures {
            if failure.wasCancelled {
                // An IPFS source without a byte when a hedged mirror finished was too slow to start
                // (mirrors only start after the hedge delay passed without IPFS progress).
                if mirrorWon && failure.bytes == 0 && failure.source.kind.isIPFS {
                    changes.append(.failed(failure.source.healthKey))
                }
            } else if Self.isSourceFailure(failure.error, kind: failure.source.kind) {
                changes.append(.failed(failure.source.healthKey))
            }
        }
        if let winner = result.winner { changes.append(.succeeded(winner.source.healthKey)) }
        return changes
    }
}
