/// How fast each source was in earlier calls (`StateDir/rates`), so the next call of a
/// transaction can start a mirror at once when IPFS was slow, or leave it alone when IPFS was fast.
///
/// Each line is `<unix time> <bytes per second> <first-byte milliseconds> <key>`, keyed like
/// ``SourceHealth``. A slow source is only slow: it is not marked down, and every call measures
/// it again, so one that got fast again recovers within a call or two. Records older than
/// ``maximumAge`` are forgotten (the network they measured has likely changed).
public struct SourceRates: Sendable, Equatable {
    /// One source's remembered speed.
    public struct Record: Sendable, Equatable {
        public var key: String
        public var speed: Speed
        /// Unix time of the last measurement.
        public var time: Int64
    }

    /// After this many seconds a record is no longer used.
    public static let maximumAge: Int64 = 7 * 24 * 3600

    /// The records, sorted by key (a list: a call looks up a handful of sources).
    public private(set) var records: [Record]

    public init(records: [Record] = []) {
        self.records = records.sorted { $0.key < $1.key }
    }

    /// Parses the state file; bad lines are skipped.
    public init(text: Substring) {
        var records: [Record] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 3)
            guard fields.count == 4, let time = Int64(fields[0]), let rate = Double(fields[1]), rate > 0,
                  let milliseconds = Double(fields[2]), milliseconds >= 0
            else { continue }
            records.append(Record(
                key: String(fields[3]), speed: Speed(bytesPerSecond: rate, firstByte: milliseconds / 1000), time: time))
        }
        self.init(records: records)
    }

    /// The state file's text.
    public var text: String {
        var text = ""
        for record in records {
            text += "\(record.time) \(Int(record.speed.bytesPerSecond.rounded())) "
            text += "\(Int((record.speed.firstByte * 1000).rounded())) \(record.key)\n"
        }
        return text
    }

    /// The remembered speed of `key`, nil when unknown or too old.
    public func speed(of key: String, now: Int64) -> Speed? {
        guard let record = records.first(where: { $0.key == key }), now - record.time <= Self.maximumAge else { return nil }
        return record.speed
    }

    /// Folds a new measurement of `key` into its record.
    public mutating func record(_ sample: Speed, for key: String, now: Int64) {
        if let index = records.firstIndex(where: { $0.key == key }) {
            let old = records[index]
            let fresh = now - old.time <= Self.maximumAge
            records[index] = Record(key: key, speed: fresh ? old.speed.smoothed(with: sample) : sample, time: now)
        } else {
            records.append(Record(key: key, speed: sample, time: now))
            records.sort { $0.key < $1.key }
        }
    }
}
