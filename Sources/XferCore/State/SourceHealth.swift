/// Which sources failed recently, so the next call of a transaction does not wait for them again.
///
/// A source that failed as a whole (unreachable, stalled, server error, too slow to start, bad
/// bytes) is marked down with back-off: 30 s after the first failure, doubling to 15 min. A down
/// source is tried last instead of first. One success clears it.
public struct SourceHealth: Sendable, Equatable {
    /// One source's record.
    public struct Record: Sendable, Equatable {
        public var failures: Int
        /// Unix time until which the source counts as down.
        public var downUntil: Int64
    }

    /// Back-off after the first failure, in seconds.
    public static let firstBackoff: Int64 = 30
    /// The longest back-off, in seconds.
    public static let maximumBackoff: Int64 = 15 * 60

    public private(set) var records: [String: Record]

    public init(records: [String: Record] = [:]) {
        self.records = records
    }

    /// Parses the state file: `<downUntil> <failures> <key>` lines; bad lines are skipped.
    public init(text: String) {
        var records: [String: Record] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2)
            guard fields.count == 3, let until = Int64(fields[0]), let failures = Int(fields[1]), failures > 0 else {
                continue
            }
            records[String(fields[2])] = Record(failures: failures, downUntil: until)
        }
        self.records = records
    }

    /// The state file text, sorted by key.
    public var text: String {
        records.sorted { $0.key < $1.key }.map { "\($0.value.downUntil) \($0.value.failures) \($0.key)\n" }.joined()
    }

    /// True when the source failed recently enough to be tried last.
    public func isDown(_ key: String, now: Int64) -> Bool {
        (records[key]?.downUntil ?? 0) > now
    }

    /// The sources that are down at `now`.
    public func down(now: Int64) -> Set<String> {
        Set(records.filter { $0.value.downUntil > now }.keys)
    }

    /// Records a whole-source failure at `now`.
    public mutating func recordFailure(_ key: String, now: Int64) {
        let failures = (records[key]?.failures ?? 0) + 1
        let backoff = min(Self.maximumBackoff, Self.firstBackoff << min(failures - 1, 20))
        records[key] = Record(failures: failures, downUntil: now + backoff)
    }

    /// Records a success: the source is healthy again.
    public mutating func recordSuccess(_ key: String) {
        records[key] = nil
    }

    /// Applies the changes another call's outcome implies: failures and successes by key.
    public mutating func apply(_ changes: [HealthChange], now: Int64) {
        for change in changes {
            switch change {
            case .failed(let key): recordFailure(key, now: now)
            case .succeeded(let key): recordSuccess(key)
            }
        }
    }
}

/// One observation about a source, made during a call.
public enum HealthChange: Sendable, Equatable {
    case failed(String)
    case succeeded(String)
}
