/// Where the sync db pacman uses for a repo may be, for a file pacman wants at `%o`, in the
/// order they are tried:
///
/// 1. the DBPath of the pacman that started us (its `--config`, `-b`, `-r`, `--sysroot`);
/// 2. beside `%o`: the db itself next to a db download, and for a package the
///    `<root>/var/cache/pacman/pkg` ↔ `<root>/var/lib/pacman/sync` pairing (pacstrap's layout),
///    `%o` being in CacheDir or in pacman 7's `download-XXXXXX` directory inside it;
/// 3. the DBPath of the configured `PacmanConfig` (``configuredCandidate(repo:)``).
public struct SyncDatabaseLocator: Sendable {
    /// `%o`.
    public let output: String
    /// The pacman that started us, when it is pacman.
    public let invocation: PacmanInvocation?
    /// ipfs-xfer's `PacmanConfig` setting.
    public let configuredPacman: String

    public init(output: String, invocation: PacmanInvocation?, configuredPacman: String) {
        self.output = output
        self.invocation = invocation
        self.configuredPacman = configuredPacman
    }

    /// The cache's suffix below a root, and the sync dir's that goes with it.
    static let cacheSuffix = "/var/cache/pacman/pkg"
    static let syncSuffix = "/var/lib/pacman/sync"

    /// The candidate paths of `<repo>.db` from pacman's arguments and from `%o`, each once, most
    /// likely first.
    public func candidates(repo: String) -> [String] {
        var paths: [String] = []
        func add(_ path: String) {
            if !paths.contains(path) { paths.append(path) }
        }
        if let invocation {
            add(invocation.pacmanConfig().syncDatabase(repo: repo))
        }
        var directory = FileSystem.directoryName(output)
        add("\(directory)/\(repo).db")
        if FileSystem.baseName(directory).hasPrefix("download-") {
            directory = FileSystem.directoryName(directory)  // pacman 7's sandbox dir in CacheDir or sync/
            add("\(directory)/\(repo).db")
        }
        if directory.hasSuffix(Self.cacheSuffix) {
            add(String(directory.dropLast(Self.cacheSuffix.count)) + Self.syncSuffix + "/\(repo).db")
        }
        return paths
    }

    /// The last candidate: `<repo>.db` in the configured pacman.conf's DBPath (read only when
    /// the others did not answer).
    public func configuredCandidate(repo: String) -> String {
        PacmanConfig(path: configuredPacman).syncDatabase(repo: repo)
    }

    /// The path pacman gives a database downloaded to `%o` once it has it: `%o` without
    /// `.part`, out of pacman 7's `download-XXXXXX` directory.
    public static func finalPath(ofDatabaseAt output: String) -> String {
        var directory = FileSystem.directoryName(output)
        if FileSystem.baseName(directory).hasPrefix("download-") { directory = FileSystem.directoryName(directory) }
        var name = FileSystem.baseName(output)
        if name.hasSuffix(".part") { name.removeLast(".part".count) }
        return "\(directory)/\(name)"
    }
}
