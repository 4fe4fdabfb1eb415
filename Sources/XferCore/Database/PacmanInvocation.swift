import Glibc

/// A pacman run and the paths it uses: the config file its arguments name, and the DBPath and
/// CacheDirs that follow from them by pacman's own rules.
///
/// pacstrap, devtools' mkarchroot, `pacman -r ROOT`, `-b DIR` and `--config FILE` all point
/// pacman at other sync dbs than `/etc/pacman.conf` says; XferCommand's parent is that pacman,
/// and its command line (`/proc/<ppid>/cmdline`, readable by pacman's DownloadUser too) says
/// which.
public struct PacmanInvocation: Sendable {
    /// pacman's arguments, without the program name.
    public let arguments: PacmanArguments

    public init(arguments: PacmanArguments) {
        self.arguments = arguments
    }

    /// The pacman that started this process, or nil when the parent is something else.
    public static func parent() -> PacmanInvocation? {
        guard let argv = commandLine(of: getppid()), let program = argv.first,
              FileSystem.baseName(program) == "pacman",
              let arguments = try? PacmanArguments(Array(argv.dropFirst()))
        else { return nil }
        return PacmanInvocation(arguments: arguments)
    }

    /// The arguments a process was started with (NUL-separated in `/proc/<pid>/cmdline`).
    static func commandLine(of pid: pid_t) -> [String]? {
        guard pid > 1, let bytes = try? FileSystem.readBytes("/proc/\(pid)/cmdline"), !bytes.isEmpty else { return nil }
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast(bytes.last == 0 ? 1 : 0)
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// pacman.conf as this pacman reads it, with the paths pacman derives from its arguments:
    /// `--dbpath` over the file's `DBPath` over `<root>/var/lib/pacman/` (with `--root` or
    /// `RootDir`), `--cachedir` over `CacheDir`; under `--sysroot` every path is inside it.
    ///
    /// `defaultConfig` is the file read without `--config` (pacman's own default).
    public func pacmanConfig(defaultConfig: String = "/etc/pacman.conf") -> PacmanConfig {
        let sysroot = arguments.sysroot.flatMap(Self.outsidePrefix)
        let inside = { (path: String) in sysroot.map { $0 + path } ?? path }
        var pacman = PacmanConfig(path: inside(arguments.configFile ?? defaultConfig))
        let root = arguments.rootDir ?? pacman.rootDir
        if let dbPath = arguments.dbPath {
            pacman.dbPath = PacmanConfig.directory(dbPath)
        } else if pacman.configuredDBPath == nil, let root {
            pacman.dbPath = PacmanConfig.directory(root) + String(PacmanConfig.defaultDBPath.dropFirst())
        }
        if !arguments.cacheDirs.isEmpty { pacman.cacheDirs = arguments.cacheDirs.map(PacmanConfig.directory) }
        pacman.dbPath = inside(pacman.dbPath)
        pacman.cacheDirs = pacman.cacheDirs.map(inside)
        return pacman
    }

    /// The prefix that puts pacman's `--sysroot` paths where this process sees them: the sysroot
    /// itself, or nil when this process already runs inside it (pacman chroots there first and
    /// starts XferCommand inside; `/` is then the sysroot).
    static func outsidePrefix(_ sysroot: String) -> String? {
        var root = stat()
        var target = stat()
        guard stat(sysroot, &target) == 0, stat("/", &root) == 0,
              target.st_dev != root.st_dev || target.st_ino != root.st_ino
        else { return nil }
        return sysroot.hasSuffix("/") ? String(sysroot.dropLast()) : sysroot
    }
}
