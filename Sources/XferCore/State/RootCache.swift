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
        StateTable.read(rootsPath)[root].flatMap { ResolvedRoot(fields: $0) }
    }

    /// The highest verified sequence per IPNS name (canonical k51 form).
    public func sequences() -> [String: UInt64] {
        StateTable.read(sequencesPath).compactMapValues { $0.count == 1 ? UInt64($0[0]) : nil }
    }

    /// Stores an answer, and raises the sequences of the names whose records gave it.
    public func store(_ resolved: ResolvedRoot, for root: String, sequences: [String: UInt64] = [:]) throws(SystemError) {
        var roots = StateTable.read(rootsPath)
        roots[root] = resolved.fields.map { Substring($0) }
        try StateTable.write(roots, to: rootsPath)
        var known = StateTable.read(sequencesPath)
        var raised = false
        for (name, sequence) in sequences where (known[name]?.first.flatMap { UInt64($0) } ?? 0) < sequence || known[name] == nil {
            known[name] = [Substring(String(sequence))]
            raised = true
        }
        if raised { try StateTable.write(known, to: sequencesPath) }
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
}
