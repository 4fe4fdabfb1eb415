/// The parts of pacman.conf ipfs-xfer needs: where the sync databases are.
public struct PacmanConfig: Sendable, Equatable {
    /// pacman's DBPath, with a trailing slash as pacman writes it.
    public var dbPath: String

    /// pacman's built-in default.
    public static let defaultDBPath = "/var/lib/pacman/"

    /// Reads `DBPath` from `[options]`; a missing or unreadable file gives pacman's default.
    public init(path: String) {
        let file = try? IniFile(contentsOf: path)
        let value = file?.entries.last { $0.section == "options" && $0.key == "DBPath" }?.value
        dbPath = value.map { $0.hasSuffix("/") ? $0 : $0 + "/" } ?? Self.defaultDBPath
    }

    /// Where pacman keeps a repo's sync db.
    public func syncDatabase(repo: String) -> String {
        "\(dbPath)sync/\(repo).db"
    }
}
