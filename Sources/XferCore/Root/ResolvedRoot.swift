/// What an `/ipns` MirrorRoot resolved to, and how long that answer may be used.
public struct ResolvedRoot: Sendable, Equatable {
    /// The immutable root, `/ipfs/<cid>[/sub/path]`.
    public var path: String
    /// Who answered: `kubo RPC …`, `routing …`, `gateway …`, `DNSLink …`, joined by ` → `.
    public var source: String
    /// The IPNS record's sequence number, when a verified record gave the answer.
    public var sequence: UInt64?
    /// How many seconds the answer is fresh (the record's TTL, at most RootCacheTime).
    public var ttl: Double
    /// When the IPNS record stops being valid (Unix seconds), when a record gave the answer.
    public var validUntil: Int64?
    /// When it was resolved (Unix seconds).
    public var resolvedAt: Int64
    /// The root's `lastupdate` (the mirror's sync time), once read; it never changes for a path.
    public var lastUpdate: Int64?

    public init(path: String, source: String, sequence: UInt64? = nil, ttl: Double, validUntil: Int64? = nil,
                resolvedAt: Int64, lastUpdate: Int64? = nil) {
        self.path = path
        self.source = source
        self.sequence = sequence
        self.ttl = ttl
        self.validUntil = validUntil
        self.resolvedAt = resolvedAt
        self.lastUpdate = lastUpdate
    }

    /// The resolved path as a MirrorRoot (always an `/ipfs` one).
    public var root: MirrorRoot? {
        try? MirrorRoot(parsing: path)
    }

    /// Whether the answer may still be used without asking again.
    public func isFresh(now: Int64) -> Bool {
        Double(now - resolvedAt) < ttl && now >= resolvedAt
    }

    /// Whether the answer may still stand in when no resolver answers.
    public func isUsableStale(now: Int64, limit: Double) -> Bool {
        Double(now - resolvedAt) < limit && now >= resolvedAt
    }

    /// One line of the `roots` state file, after the configured root it belongs to.
    var fields: [String] {
        [path, source, sequence.map(String.init) ?? "-", String(ttl), validUntil.map(String.init) ?? "-",
         String(resolvedAt), lastUpdate.map(String.init) ?? "-"]
    }

    /// Reads the fields written by ``fields``; nil for anything malformed.
    init?(fields: some Collection<Substring>) {
        let parts = Array(fields)
        guard parts.count == 7, parts[0].hasPrefix("/ipfs/"), let ttl = Double(parts[3]), let resolvedAt = Int64(parts[5])
        else { return nil }
        func optional<T: LosslessStringConvertible>(_ text: Substring) -> T?? {
            text == "-" ? .some(nil) : T(String(text)).map { .some($0) }
        }
        guard let sequence: UInt64? = optional(parts[2]), let validUntil: Int64? = optional(parts[4]),
              let lastUpdate: Int64? = optional(parts[6]) else { return nil }
        self.init(path: String(parts[0]), source: String(parts[1]), sequence: sequence, ttl: ttl,
                  validUntil: validUntil, resolvedAt: resolvedAt, lastUpdate: lastUpdate)
        guard root != nil else { return nil }
    }
}
