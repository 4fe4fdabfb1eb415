import Glibc

/// The state shared by all calls (`StateDir`): source health, remembered speeds and the transfer log.
///
/// pacman 7 runs ipfs-xfer as its `alpm` user and hooks run as root, so the directory must be
/// writable by both; when it is not, the tool says so once and works without state.
public struct StateDirectory: Sendable {
    public let path: String

    private var healthPath: String { path + "/sources" }
    private var lockPath: String { path + "/sources.lock" }
    private var logPath: String { path + "/transfers.log" }
    private var ratesPath: String { path + "/rates" }

    /// Opens the directory, creating it when possible; throws when it is not writable.
    public init(path: String) throws(SystemError) {
        self.path = path
        if !FileSystem.isDirectory(path) { try FileSystem.makeDirectories(path) }
        guard access(path, W_OK) == 0 else { throw SystemError("write to \(path)") }
    }

    /// Reads the health records; a missing or unreadable file gives none.
    public func loadHealth() -> SourceHealth {
        (try? FileSystem.readText(healthPath)).map(SourceHealth.init(text:)) ?? SourceHealth()
    }

    /// Merges this call's observations into the health file under an exclusive lock.
    /// Nothing is written when the changes leave the records as they are (the usual case: a
    /// healthy source succeeding again).
    public func updateHealth(_ changes: [HealthChange], now: Int64) throws(SystemError) {
        var preview = loadHealth()
        let before = preview
        preview.apply(changes, now: now)
        guard preview != before else { return }
        try locked(lockPath) { () throws(SystemError) in
            var health = loadHealth()
            health.apply(changes, now: now)
            try FileSystem.writeAtomically(healthPath, health.text, mode: 0o664)
        }
    }

    /// Reads the remembered source speeds; a missing or unreadable file gives none.
    public func loadRates() -> SourceRates {
        (try? FileSystem.readText(ratesPath)).map { SourceRates(text: $0[...]) } ?? SourceRates()
    }

    /// Folds this call's measurements into the rates file under the state lock (not fsynced:
    /// the rates are a cache, and a call pays for every fsync).
    public func updateRates(_ samples: [(key: String, speed: Speed)], now: Int64) throws(SystemError) {
        guard !samples.isEmpty else { return }
        try locked(lockPath) { () throws(SystemError) in
            var rates = loadRates()
            for sample in samples { rates.record(sample.speed, for: sample.key, now: now) }
            try FileSystem.writeAtomically(ratesPath, rates.text, mode: 0o664, durable: false)
        }
    }

    /// Runs `body` holding the exclusive lock file `lockPath` (waiting for it).
    func locked(_ lockPath: String, _ body: () throws(SystemError) -> Void) throws(SystemError) {
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o664)
        guard lock >= 0 else { throw SystemError("open \(lockPath)") }
        defer { close(lock) }
        Self.shareWithGroup(lock)
        guard flock(lock, LOCK_EX) == 0 else { throw SystemError("lock \(lockPath)") }
        try body()
    }

    /// Appends one line to the transfer log (a single O_APPEND write, so concurrent calls do not mix).
    public func log(_ entry: TransferLogEntry) throws(SystemError) {
        let fd = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o664)
        guard fd >= 0 else { throw SystemError("open \(logPath)") }
        defer { close(fd) }
        Self.shareWithGroup(fd)
        try FileSystem.writeAll(fd, Array(entry.line.utf8), path: logPath)
    }

    /// Makes a state file group-writable whatever the umask, so root (hooks) and pacman's
    /// DownloadUser can both write it in a setgid StateDir (`2775 root:alpm`). Only the file's
    /// owner can do this; for anyone else it is already done.
    static func shareWithGroup(_ fd: Int32) {
        fchmod(fd, 0o664)
    }
}
