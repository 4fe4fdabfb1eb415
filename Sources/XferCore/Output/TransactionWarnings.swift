import Glibc

/// Prints a warning that holds for a whole transaction once per transaction, not once per call.
///
/// pacman starts ipfs-xfer once per file, so a StateDir the DownloadUser cannot write would
/// otherwise be reported hundreds of times in one upgrade. The transaction is the process that
/// started this call (pacman) or, for `sync` and `serve`, this process itself, told apart by
/// pid and start time (a reused pid is another one). Which transaction last saw a warning is
/// remembered per user and topic in a small file under `/tmp` (written by whoever runs the call,
/// root or the DownloadUser). When that file cannot be used, the warning is printed: better
/// twice than never.
public struct TransactionWarnings: Sendable {
    /// Which process is the transaction.
    public enum Scope: Sendable {
        /// The parent: pacman, calling once per file.
        case parent
        /// This process: a whole transaction run by ipfs-xfer itself.
        case thisProcess
    }

    let scope: Scope
    /// Where the markers go.
    let directory: String

    public init(_ scope: Scope, directory: String = "/tmp") {
        self.scope = scope
        self.directory = directory
    }

    /// Calls `warn` with `message` unless this transaction already had a warning on `topic`.
    public func once(_ topic: String, _ message: String, warn: (String) -> Void) {
        let owner = scope == .parent ? getppid() : getpid()
        let path = "\(directory)/ipfs-xfer-\(getuid())-\(topic).warned"
        let marker = Array("\(owner) \(Self.startTime(of: owner) ?? "?")\n".utf8)
        if let seen = try? FileSystem.readBytes(path), seen == marker { return }
        // O_NOFOLLOW: /tmp is shared, and a link someone planted there must not be written through.
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 {
            _ = try? FileSystem.writeAll(fd, marker, path: path)
            close(fd)
        }
        warn(message)
    }

    /// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    static func startTime(of pid: pid_t) -> String? {
        guard let bytes = try? FileSystem.readBytes("/proc/\(pid)/stat"),
              let close = bytes.lastIndex(of: UInt8(ascii: ")"))
        else { return nil }
        // The fields after the command name (which may hold spaces and parentheses) start at the state, field 3.
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        guard fields.count > 19 else { return nil }
        return String(decoding: fields[19], as: UTF8.self)
    }
}
