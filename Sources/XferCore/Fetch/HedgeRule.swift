/// When the HTTP mirrors join the IPFS sources: when IPFS is silent, and when it is expected to
/// finish later than a mirror would.
///
/// From ``delay`` on, the rule compares IPFS's expected finish (the bytes left over its rate
/// of the last second) with a mirror's (its first-byte time plus the bytes left over its
/// remembered rate, or ``Speed/assumedMirror``), and starts the mirror as soon as IPFS is
/// expected to be later. Before ``delay`` it decides only from what earlier calls remembered
/// of every IPFS source, so the second call of a transaction that found IPFS slow starts the
/// mirror at once. With no rate to go by, the old rule holds: the mirrors join when IPFS has sent
/// nothing for ``delay`` seconds (at the start or mid-file), or when every IPFS source failed.
struct HedgeRule: Sendable {
    /// One running IPFS attempt, as the rule sees it.
    struct Runner: Sendable {
        /// Its rate over the last second, nil until it has sent for long enough.
        var rate: Double?
        /// Its speed in earlier calls, if remembered.
        var remembered: Speed?
        /// Seconds since its last byte (or its start, before the first).
        var silence: Double
        /// Bytes it has left, when known (in a race; a shared download passes the file's).
        var remaining: Int64?

        /// An attempt as its progress shows it at `now`.
        init(progress: TransferProgress, remembered: Speed?, remaining: Int64?, now: UInt64) {
            self.rate = progress.rate(now: now)
            self.remembered = remembered
            self.silence = Double(now &- max(progress.startTime, progress.lastByteTime)) / 1e9
            self.remaining = remaining
        }

        init(rate: Double?, remembered: Speed?, silence: Double, remaining: Int64?) {
            self.rate = rate
            self.remembered = remembered
            self.silence = silence
            self.remaining = remaining
        }
    }

    /// The user's `HedgeDelay`, in seconds.
    let delay: Double
    /// What a mirror is expected to do.
    let mirror: Speed

    /// True when a mirror should start now; `sharesWork` says the runners split the bytes left
    /// (their rates add up) rather than race for them (the fastest counts).
    func startsMirror(elapsed: Double, runners: [Runner], sharesWork: Bool) -> Bool {
        guard !runners.isEmpty else { return true }
        if elapsed >= delay && runners.allSatisfy({ $0.silence >= delay }) { return true }
        let rates: [Double?] = runners.map { runner in
            elapsed >= delay ? runner.rate ?? runner.remembered?.bytesPerSecond : runner.remembered?.bytesPerSecond
        }
        guard rates.allSatisfy({ $0 != nil }) else { return false }
        let known = rates.map { $0! }
        guard let remaining = runners.compactMap(\.remaining).max() else {
            // No size to go by: a mirror joins when it would be more than twice as fast.
            return elapsed >= delay && (known.max() ?? 0) * 2 < mirror.bytesPerSecond
        }
        let ipfsFinish: Double
        if sharesWork {
            ipfsFinish = Double(remaining) / max(known.reduce(0, +), 1)
        } else {
            ipfsFinish = zip(runners, known).map { Double($0.remaining ?? remaining) / max($1, 1) }.min() ?? .infinity
        }
        return ipfsFinish > mirror.seconds(for: remaining)
    }
}
