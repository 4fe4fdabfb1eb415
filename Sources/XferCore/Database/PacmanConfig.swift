import Glibc

/// The parts of pacman.conf ipfs-xfer needs: where the sync databases and the package cache
/// are, which repos are configured, and the architecture.
public struct PacmanConfig: Sendable, Equatable {
    /// pacman's DBPath, with a trailing slash as pacman writes it.
    public var dbPath: String
    /// pacman's CacheDirs, in order, each with a trailing slash.
    public var cacheDirs: [String]
    /// The repos, in the order of their sections.
    public var repos: [String]
    /// `Architecture`, with `auto` (or none) read as the machine's.
    public var architecture: String

    /// pacman's built-in defaults.
    public static let defaultDBPath = "/var/lib/pacman/"
    public static let defaultCacheDir = "/var/cache/pacman/pkg/"

    /// Reads pacman.conf; a missing or unreadable file gives pacman's defaults. Include lines
    /// of repo sections are not followed (only the section names are needed).
    public init(path: String) {
        let entries = (try? IniFile(contentsOf: path))?.entries ?? []
        let options = entries.filter { $0.section == "options" }
        func directory(_ value: String) -> String { value.hasSuffix("/") ? value : value + "/" }
        dbPath = options.last { $0.key == "DBPath" }.map { directory($0.value) } ?? Self.defaultDBPath
        let caches = options.filter { $0.key == "CacheDir" }.map { directory($0.value) }
        cacheDirs = caches.isEmpty ? [Self.defaultCacheDir] : caches
        var repos: [String] = []
        for entry in entries where entry.section != "options" && !repos.contains(entry.section) {
            repos.append(entry.section)
        }
        self.repos = repos
        let arch = options.last { $0.key == "Architecture" }?.value.split(separator: " ").first.map(String.init)
        architecture = arch == nil || arch == "auto" ? Self.machine() : arch!
    }

    private static func machine() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Where pacman keeps a repo's sync db.
    public func syncDatabase(repo: String) -> String {
        "\(dbPath)sync/\(repo).db"
    }
}
