import Glibc

/// The parts of pacman.conf ipfs-xfer needs: where the sync databases and the package cache
/// are, which repos are configured, and the architecture.
public struct PacmanConfig: Sendable, Equatable {
    /// pacman's DBPath, with a trailing slash as pacman writes it.
    public var dbPath: String
    /// `DBPath` as the file sets it (nil when it does not: pacman then derives it from the root).
    public var configuredDBPath: String?
    /// `RootDir` as the file sets it.
    public var rootDir: String?
    /// pacman's CacheDirs, in order, each with a trailing slash.
    public var cacheDirs: [String]
    /// The repos, in the order of their sections.
    public var repos: [String]
    /// `Architecture`, with `auto` (or none) read as the machine's.
    public var architecture: String
    /// Whether pacman checks package signatures by `[options]`' SigLevel, and by the repos' own.
    private var packageSignaturesByDefault: Bool
    /// The repos with a SigLevel of their own (a list: a dictionary's first use costs pacman's
    /// per-file call a conformance scan, and pacman.conf names a handful of repos).
    private var repoSigLevels: [RepoSigLevel]

    /// What one repo's own SigLevel says.
    private struct RepoSigLevel: Sendable, Equatable {
        let repo: String
        let checksPackages: Bool
        let database: DatabaseSignature
    }

    /// Whether pacman asks for a repo database's signature, and what it does without one.
    public enum DatabaseSignature: Sendable, Equatable {
        case never
        /// Asked for; a missing one is fine (Arch's `DatabaseOptional`: Arch does not sign its dbs).
        case optional
        case required
    }
    /// What `[options]`' SigLevel says of databases.
    private var databaseSignatureByDefault: DatabaseSignature

    /// pacman's built-in defaults.
    public static let defaultDBPath = "/var/lib/pacman/"
    public static let defaultCacheDir = "/var/cache/pacman/pkg/"

    /// Reads pacman.conf; a missing or unreadable file gives pacman's defaults. Include lines
    /// of repo sections are not followed (only the section names are needed).
    public init(path: String) {
        let entries = (try? IniFile(contentsOf: path))?.entries ?? []
        let options = entries.filter { $0.section == "options" }
        configuredDBPath = options.first { $0.key == "DBPath" }.map { Self.directory($0.value) }
        dbPath = configuredDBPath ?? Self.defaultDBPath
        rootDir = options.first { $0.key == "RootDir" }.map(\.value)
        let caches = options.filter { $0.key == "CacheDir" }.map { Self.directory($0.value) }
        cacheDirs = caches.isEmpty ? [Self.defaultCacheDir] : caches
        var repos: [String] = []
        for entry in entries where entry.section != "options" && !repos.contains(entry.section) {
            repos.append(entry.section)
        }
        self.repos = repos
        let optionLevels = options.filter { $0.key == "SigLevel" }.map(\.value)
        let defaultSignatures = Self.checksPackageSignatures(optionLevels, default: true)
        let defaultDatabase = Self.databaseSignature(optionLevels, default: .optional)
        var repoSignatures: [RepoSigLevel] = []
        for repo in repos {
            let levels = entries.filter { $0.section == repo && $0.key == "SigLevel" }.map(\.value)
            if !levels.isEmpty {
                repoSignatures.append(RepoSigLevel(
                    repo: repo, checksPackages: Self.checksPackageSignatures(levels, default: defaultSignatures),
                    database: Self.databaseSignature(levels, default: defaultDatabase)))
            }
        }
        packageSignaturesByDefault = defaultSignatures
        databaseSignatureByDefault = defaultDatabase
        repoSigLevels = repoSignatures
        let arch = options.last { $0.key == "Architecture" }?.value.split(separator: " ").first.map(String.init)
        architecture = arch == nil || arch == "auto" ? Self.machine() : arch!
    }

    /// Whether pacman asks for a repo's package `.sig` files (its SigLevel is not Never for packages).
    public func wantsPackageSignatures(repo: String) -> Bool {
        repoSigLevels.first { $0.repo == repo }?.checksPackages ?? packageSignaturesByDefault
    }

    /// Whether pacman asks for a repo database's `.sig`, and whether it may be missing.
    public func databaseSignature(repo: String) -> DatabaseSignature {
        repoSigLevels.first { $0.repo == repo }?.database ?? databaseSignatureByDefault
    }

    /// Applies SigLevel values as pacman's `process_siglevel` does, for the database half
    /// (pacman's built-in default is `Optional`).
    static func databaseSignature(_ levels: [String], default start: DatabaseSignature) -> DatabaseSignature {
        var signature = start
        for token in levels.flatMap({ $0.split(separator: " ") }) {
            switch token {
            case "Never", "DatabaseNever": signature = .never
            case "Optional", "DatabaseOptional": signature = .optional
            case "Required", "DatabaseRequired": signature = .required
            default: break
            }
        }
        return signature
    }

    /// Applies SigLevel values as pacman's `process_siglevel` does, for the package half only.
    /// pacman's built-in default is `Optional`, which checks them.
    static func checksPackageSignatures(_ levels: [String], default start: Bool) -> Bool {
        var checks = start
        for token in levels.flatMap({ $0.split(separator: " ") }) {
            switch token {
            case "Never", "PackageNever": checks = false
            case "Optional", "Required", "PackageOptional", "PackageRequired": checks = true
            default: break
            }
        }
        return checks
    }

    private static func machine() -> String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// A directory setting as pacman keeps it, with a trailing slash.
    static func directory(_ value: String) -> String {
        value.hasSuffix("/") ? value : value + "/"
    }

    /// The first CacheDir's copy of `fileName`, or nil when no CacheDir has one.
    public func cachedPath(of fileName: String) -> String? {
        cacheDirs.lazy.map { $0 + fileName }.first { FileSystem.fileSize($0) != nil }
    }

    /// Where pacman keeps a repo's sync db.
    public func syncDatabase(repo: String) -> String {
        "\(dbPath)sync/\(repo).db"
    }
}
