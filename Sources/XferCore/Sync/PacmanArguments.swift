/// A pacman command line, understood as far as `ipfs-xfer sync` needs: is it a sync transaction,
/// how often does it refresh (`y`), which config, dbpath and cachedirs does it name, and the
/// command lines for the refresh, the download list and the final run.
///
/// Tokens are kept as they were written, so the final command differs from the user's only by
/// the refresh flags that were already carried out.
public struct PacmanArguments: Sendable, Equatable {
    /// Why a command line cannot be taken apart.
    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case missingValue(String)

        public var description: String {
            switch self {
            case .missingValue(let option): "pacman option \(option) needs a value"
            }
        }
    }

    /// One argument (or an option with its separate value).
    enum Token: Sendable, Equatable {
        /// `-Syu`, `-b /path` (`value` set for `b` and `r`, whose value may follow in the cluster).
        case short(letters: String, value: String?, attached: Bool)
        /// `--name`, `--name=value` or `--name value`.
        case long(name: String, value: String?, attached: Bool)
        /// A target, or anything after `--`.
        case target(String)
        /// The `--` separator.
        case separator
    }

    // The option tables are arrays, searched in order: a `Set`'s first use would cost every one
    // of pacman's per-file calls a protocol-conformance scan of the whole binary.

    /// pacman's long options that take a value.
    static let longWithValue: [String] = [
        "config", "root", "dbpath", "cachedir", "gpgdir", "hookdir", "logfile", "arch", "sysroot", "color",
        "ignore", "ignoregroup", "assume-installed", "overwrite", "print-format",
    ]
    /// Sync flags that query or clean instead of installing: nothing to prefetch.
    static let queryLetters: [Character] = ["c", "s", "i", "l", "g", "p"]
    static let queryLongs: [String] = ["clean", "search", "info", "list", "groups", "print", "help", "version"]

    let tokens: [Token]

    /// Takes apart `arguments` (without the program name).
    public init(_ arguments: [String]) throws(ParseError) {
        var tokens: [Token] = []
        var index = 0
        var afterSeparator = false
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if afterSeparator || argument == "-" || !argument.hasPrefix("-") {
                tokens.append(.target(argument))
            } else if argument == "--" {
                afterSeparator = true
                tokens.append(.separator)
            } else if argument.hasPrefix("--") {
                let body = argument.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    tokens.append(.long(name: String(body[..<equals]), value: String(body[body.index(after: equals)...]), attached: true))
                } else if Self.longWithValue.contains(String(body)) {
                    guard index < arguments.count else { throw .missingValue(argument) }
                    tokens.append(.long(name: String(body), value: arguments[index], attached: false))
                    index += 1
                } else {
                    tokens.append(.long(name: String(body), value: nil, attached: false))
                }
            } else {
                let letters = argument.dropFirst()
                if let valued = letters.firstIndex(where: { $0 == "b" || $0 == "r" }) {
                    let rest = letters[letters.index(after: valued)...]
                    if rest.isEmpty {
                        guard index < arguments.count else { throw .missingValue("-\(letters[valued])") }
                        tokens.append(.short(letters: String(letters), value: arguments[index], attached: false))
                        index += 1
                    } else {
                        tokens.append(.short(letters: String(letters[...valued]), value: String(rest), attached: true))
                    }
                } else {
                    tokens.append(.short(letters: String(letters), value: nil, attached: false))
                }
            }
        }
        self.tokens = tokens
    }

    private var letters: [Character] {
        tokens.flatMap { token -> [Character] in
            if case .short(let letters, _, _) = token { return Array(letters) }
            return []
        }
    }

    private var longNames: [String] {
        tokens.compactMap { token in
            if case .long(let name, _, _) = token { return name }
            return nil
        }
    }

    /// The values of a long option (and of its short form, if any), in order.
    private func values(long name: String, short: Character? = nil) -> [String] {
        tokens.compactMap { token in
            switch token {
            case .long(name, let value, _): value
            case .short(let letters, let value, _) where short != nil && letters.last == short: value
            default: nil
            }
        }
    }

    /// True for `-S`/`--sync` operations that install or download packages.
    public var isSyncTransaction: Bool {
        let isSync = letters.contains("S") || longNames.contains("sync")
        return isSync && !letters.contains { Self.queryLetters.contains($0) }
            && !longNames.contains { Self.queryLongs.contains($0) }
    }

    /// How many times the databases are refreshed (`-y` once, `-yy` to force).
    public var refreshCount: Int {
        letters.filter { $0 == "y" }.count + longNames.filter { $0 == "refresh" }.count
    }

    /// True when there is something to install besides refreshing: targets or `-u`.
    public var hasWork: Bool {
        letters.contains("u") || longNames.contains("sysupgrade")
            || tokens.contains { if case .target = $0 { true } else { false } }
    }

    /// `--config` when given.
    public var configFile: String? { values(long: "config").last }
    /// `--dbpath`/`-b` when given.
    public var dbPath: String? { values(long: "dbpath", short: "b").last }
    /// `--root`/`-r` when given.
    public var rootDir: String? { values(long: "root", short: "r").last }
    /// `--sysroot` when given.
    public var sysroot: String? { values(long: "sysroot").last }
    /// Every `--cachedir` given.
    public var cacheDirs: [String] { values(long: "cachedir") }

    /// The command without the refresh flags (for the download list and the final run).
    public func withoutRefresh() -> [String] {
        render(tokens.compactMap { token in
            switch token {
            case .short(let letters, let value, let attached):
                let kept = letters.filter { $0 != "y" }
                return kept.isEmpty ? nil : .short(letters: kept, value: value, attached: attached)
            case .long("refresh", _, _): return nil
            default: return token
            }
        })
    }

    /// The command that prints the repo and URL of every package the transaction needs, one
    /// per line (a `file://` URL for a package already in CacheDir).
    public func printingURLs() -> [String] {
        var printing = withoutRefresh()
        let separator = printing.firstIndex(of: "--") ?? printing.endIndex
        printing.insert(contentsOf: ["--print", "--print-format", "%r %l", "--noconfirm"], at: separator)
        return printing
    }

    private func render(_ tokens: [Token]) -> [String] {
        tokens.flatMap { token -> [String] in
            switch token {
            case .short(let letters, let value?, true): ["-" + letters + value]
            case .short(let letters, let value?, false): ["-" + letters, value]
            case .short(let letters, nil, _): ["-" + letters]
            case .long(let name, let value?, true): ["--\(name)=\(value)"]
            case .long(let name, let value?, false): ["--" + name, value]
            case .long(let name, nil, _): ["--" + name]
            case .target(let target): [target]
            case .separator: ["--"]
            }
        }
    }
}
