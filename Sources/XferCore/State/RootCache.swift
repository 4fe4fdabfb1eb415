import Glibc

/// The resolved roots and the highest IPNS sequence numbers seen, kept in StateDir.
///
/// `roots` maps each configured `/ipns` root to its last answer, so every call of a
/// transaction uses the same `/ipfs` root; `ipns-sequences` keeps the highest sequence
/// verified per name, so a replayed older record is refused (rollback protection). Both are
/// rewritten atomically under `roots.lock`, which also serialises resolving: a call that finds
/// another resolving waits for its answer instead of asking again. A corrupt line is ignored.
public struct RootCache: Sendable {
    public let state: StateDirectory

    private var rootsPath: String { state.path + "/roots" }
    private var sequencesPath: String { state.path + "/ipns-sequences" }
    private var lockPath: String { state.path + "/roots.lock" }

    public init(state: StateDirectory) {
        self.state = state
    }

    /// The cached answer for a configured root.
    public func entry(for root: String) -> ResolvedRoot? {
        Self.table(rootsPath)[root].flatMap { ResolvedRoot(fields: $0) }
    }

    /// The highest verified sequence per IPNS name (canonical k51 form).
    public func sequences() -> [String: UInt64] {
        Self.table(sequencesPath).compactMapValues { $0.count == 1 ? UInt64($0[0]) : nil }
    }

    /// Stores an answer, and raises the sequences of the names whose records gave it.
    public func store(_ resolved: ResolvedRoot, for root: String, sequences: [String: UInt64] = [:]) throws(SystemError) {
        var roots = Self.table(rootsPath)
        roots[root] = resolved.fields.map { Substring($0) }
        try Self.write(roots, to: rootsPath)
        var known = Self.table(sequencesPath)
        var raised = false
        for (name, sequence) in sequences where (known[name]?.first.flatMap { UInt64($0) } ?? 0) < sequence || known[name] == nil {
            known[name] = [Substring(String(sequence))]
            raised = true
        }
        if raised { try Self.write(known, to: sequencesPath) }
    }

    /// Runs `body` holding the exclusive resolve lock, waiting at most `timeout` seconds for it;
    /// runs it without the lock when it cannot be had (a stuck holder must not stop pacman).
    public func whileLocked<T>(timeout: Double, _ body: () async throws -> T) async rethrows -> T {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        defer { if fd >= 0 { close(fd) } }
        if fd >= 0 {
            StateDirectory.shareWithGroup(fd)
            let start = Monotonic.nanoseconds()
            while flock(fd, LOCK_EX | LOCK_NB) != 0 && Monotonic.seconds(since: start) < timeout {
                try? await Task.sleep(nanoseconds: 20_000_000)
            }
        }
        return try await body()
    }

    private static func table(_ path: String) -> [String: [Substring]] {
        guard let text = try? FileSystem.readText(path) else { return [:] }
        var table: [String: [Substring]] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 2, !fields[0].isEmpty else { continue }
            table[String(fields[0])] = Array(fields.dropFirst())
        }
        return table
    }

    private static func write(_ table: [String: [Substring]], to path: String) throws(SystemError) {
        let text = table.keys.sorted().map { key in ([Substring(key)] + table[key]!).joined(separator: "\t") + "\n" }.joined()
        try FileSystem.writeAtomically(path, text, mode: 0o664)
    }
}
