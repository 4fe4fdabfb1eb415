import IPFSData

/// The settings of `/etc/ipfs-xfer.conf`, validated.
///
/// Everything has a default, so a missing default file gives a working HTTP-only fetcher with
/// pacman's mirrorlist as fallback. Unknown keys and bad values are errors that name the line.
public struct XferConfig: Sendable {
    /// Where the config is read from when `--config` is not given.
    public static let defaultPath = "/etc/ipfs-xfer.conf"

    /// The IPFS path the mirror is published under; nil means IPFS is not used.
    public var mirrorRoot: MirrorRoot?
    /// Trusted local path gateways (kubo), base URLs without a trailing slash.
    public var gateways: [String] = ["http://127.0.0.1:8080"]
    /// Gateways that are not trusted: files come from them as CARs verified block by block.
    public var trustlessGateways: [String] = []
    /// Where kubo mounts /ipfs (`<MountPoint>/<cid>/…`); nil when no mount is used.
    public var mountPoint: String?
    /// pacman mirrorlists whose `Server` lines are the HTTP fallback, in order.
    public var mirrorlists: [String] = ["/etc/pacman.d/mirrorlist"]
    /// Where state shared between calls lives (source health, transfer log).
    public var stateDir = "/var/lib/ipfs-xfer"
    /// How long IPFS may go without delivering a byte before the HTTP mirrors are started too.
    public var hedgeDelay: Double = 1
    /// How long connecting to any source may take.
    public var connectTimeout: Double = 10
    /// How long any source may go without delivering a byte before it is abandoned.
    public var stallTimeout: Double = 10
    /// Where files sit below the mirror root and below each mirror URL.
    public var layout = Layout.arch
    /// pacman's configuration, read for DBPath (to verify packages against the sync dbs).
    public var pacmanConfig = "/etc/pacman.conf"
    /// The local kubo node's RPC (trusted for IPNS and DNSLink answers, and where packages
    /// are seeded); nil disables it.
    public var api: String? = "http://127.0.0.1:5001"
    /// The `Authorization` header for the RPC (from kubo's `basic:user:pass` or `bearer:token`).
    public var apiAuthorization: String?
    /// How the mirror imported its files, for seeding when its index does not say.
    public var importParameters = ImportParameters.unixfsV0_2015
    /// Delegated routing endpoints (`/routing/v1/ipns/{name}`) for verified IPNS records.
    public var routingEndpoints: [String] = []
    /// Where DNSLink TXT queries go.
    public var dnsServer = DNSLinkLookup.Transport.system
    /// The longest a resolved /ipns root is reused before it is resolved again.
    public var rootCacheTime: Double = 300
    /// How old a resolved root may be and still be used when every resolver fails.
    public var rootStaleLimit: Double = 86_400
    /// How long resolving a root may take.
    public var resolveTimeout: Double = 5
    /// How many files `ipfs-xfer sync` fetches at once.
    public var parallelDownloads = 8
    /// How long `ipfs-xfer serve` may take to have a file verified before it answers 404, so
    /// that pacman moves on to its mirrors (its own downloader gives up after 10 s without data).
    public var serveTimeout: Double = 5
    /// Packages at least this big (with a CID from the root's index) are fetched in segments
    /// from several sources at once; nil turns segmenting off.
    public var segmentThreshold: Int64? = 16 << 20

    /// Whether a package no sync db lists is refused from every source but `%u` itself.
    public var requireVerified = false

    /// The built-in defaults.
    public init() {}

    /// The keys of `[options]`, in the order the example documents them.
    static let knownKeys = [
        "MirrorRoot", "Gateway", "TrustlessGateway", "MountPoint", "Include", "StateDir", "HedgeDelay",
        "ConnectTimeout", "StallTimeout", "Layout", "PacmanConfig", "API", "RoutingEndpoint", "DNSServer",
        "RootCacheTime", "RootStaleLimit", "ResolveTimeout", "APIAuth", "Import", "ParallelDownloads", "ServeTimeout",
        "SegmentThreshold", "RequireVerified",
    ]

    /// Validates a parsed file; the first problem is thrown.
    public init(file: IniFile) throws(ConfigError) {
        var gateways: [String] = []
        var mirrorlists: [String] = []
        func isURL(_ value: String) -> Bool { value.hasPrefix("http://") || value.hasPrefix("https://") }
        for entry in file.entries {
            func fail(_ message: String) -> ConfigError {
                ConfigError(path: file.path, line: entry.line, message: message)
            }
            guard entry.section == "options" else {
                throw fail("unknown section [\(entry.section)] (only [options] is read)")
            }
            guard Self.knownKeys.contains(entry.key) else {
                throw fail("unknown key '\(entry.key)' (known: \(Self.knownKeys.joined(separator: ", ")))")
            }
            guard !entry.value.isEmpty else { throw fail("\(entry.key) needs a value") }
            let value = entry.value
            switch entry.key {
            case "MirrorRoot":
                do throws(MirrorRoot.ParseError) {
                    mirrorRoot = try MirrorRoot(parsing: value)
                } catch {
                    throw fail("MirrorRoot: \(error)")
                }
            case "Gateway":
                guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
                    throw fail("Gateway must be an http:// or https:// URL, not '\(value)'")
                }
                gateways.append(value.trimmingSuffix("/"))
            case "TrustlessGateway":
                guard value.hasPrefix("http://") || value.hasPrefix("https://") else {
                    throw fail("TrustlessGateway must be an http:// or https:// URL, not '\(value)'")
                }
                trustlessGateways.append(value.trimmingSuffix("/"))
            case "MountPoint":
                guard value.hasPrefix("/") else { throw fail("MountPoint must be an absolute path, not '\(value)'") }
                mountPoint = value.count > 1 ? value.trimmingSuffix("/") : value
            case "Include":
                guard value.hasPrefix("/") else { throw fail("Include must be an absolute path, not '\(value)'") }
                guard FileSystem.exists(value) else { throw fail("Include: \(value) does not exist") }
                mirrorlists.append(value)
            case "StateDir":
                guard value.hasPrefix("/") else { throw fail("StateDir must be an absolute path, not '\(value)'") }
                stateDir = value
            case "SegmentThreshold":
                guard value == "none" || Self.parseSize(value) != nil else {
                    throw fail("SegmentThreshold must be a size such as 16MiB, 512KiB or 1000000, or none, not '\(value)'")
                }
                segmentThreshold = Self.parseSize(value)
            case "RequireVerified":
                switch value.lowercased() {
                case "yes", "true", "on", "1": requireVerified = true
                case "no", "false", "off", "0": requireVerified = false
                default: throw fail("RequireVerified must be yes or no, not '\(value)'")
                }
            case "ParallelDownloads":
                guard let count = Int(value), (1...64).contains(count) else {
                    throw fail("ParallelDownloads must be a number from 1 to 64, not '\(value)'")
                }
                parallelDownloads = count
            case "HedgeDelay", "ConnectTimeout", "StallTimeout", "RootCacheTime", "RootStaleLimit", "ResolveTimeout",
                 "ServeTimeout":
                guard let seconds = Self.parseDuration(value), seconds >= 0 else {
                    throw fail("\(entry.key) must be a duration such as 1.5s, 250ms or 5m, not '\(value)'")
                }
                switch entry.key {
                case "HedgeDelay": hedgeDelay = seconds
                case "ConnectTimeout": connectTimeout = max(seconds, 0.001)
                case "StallTimeout": stallTimeout = max(seconds, 1)
                case "RootCacheTime": rootCacheTime = seconds
                case "RootStaleLimit": rootStaleLimit = seconds
                case "ServeTimeout": serveTimeout = max(seconds, 0.1)
                default: resolveTimeout = max(seconds, 1)
                }
            case "API":
                guard value == "none" || isURL(value) else {
                    throw fail("API must be kubo's RPC URL (http://127.0.0.1:5001) or none, not '\(value)'")
                }
                api = value == "none" ? nil : value.trimmingSuffix("/")
            case "APIAuth":
                guard value.hasPrefix("basic:") || value.hasPrefix("bearer:"), value.count > 7 else {
                    throw fail("APIAuth must be kubo's AuthSecret form, basic:user:password or bearer:token")
                }
                apiAuthorization = KuboRPC.authorizationHeader(secret: value)
            case "Import":
                do throws(ImportParameters.ParseError) {
                    importParameters = try ImportParameters(parsing: value)
                } catch {
                    throw fail("Import: \(error)")
                }
            case "RoutingEndpoint":
                guard isURL(value) else { throw fail("RoutingEndpoint must be an http:// or https:// URL, not '\(value)'") }
                routingEndpoints.append(value.trimmingSuffix("/"))
            case "DNSServer":
                guard let transport = Self.parseDNSServer(value) else {
                    throw fail("DNSServer must be system, an address:port such as 127.0.0.1:53, or an https:// DoH URL, not '\(value)'")
                }
                dnsServer = transport
            case "Layout":
                do throws(Layout.ParseError) {
                    layout = try Layout(parsing: value)
                } catch {
                    throw fail("Layout: \(error)")
                }
            case "PacmanConfig":
                guard value.hasPrefix("/") else { throw fail("PacmanConfig must be an absolute path, not '\(value)'") }
                pacmanConfig = value
            default:
                throw fail("unhandled key '\(entry.key)'")
            }
        }
        if !gateways.isEmpty { self.gateways = gateways }
        if !mirrorlists.isEmpty { self.mirrorlists = mirrorlists }
    }

    /// Loads the config: `path` when given (it must exist), else the default file when present.
    public static func load(path: String?) throws(ConfigError) -> XferConfig {
        if let path { return try XferConfig(file: IniFile(contentsOf: path)) }
        guard FileSystem.exists(defaultPath) else { return XferConfig() }
        return try XferConfig(file: IniFile(contentsOf: defaultPath))
    }

    /// Parses `system`, `127.0.0.1:53` (an IPv4 nameserver; port 53 when left out) or a DoH URL.
    static func parseDNSServer(_ text: String) -> DNSLinkLookup.Transport? {
        if text == "system" { return .system }
        if text.hasPrefix("https://") || text.hasPrefix("http://") { return .https(text) }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count) else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) else { return nil }
        let port = parts.count == 2 ? Int(parts[1]) : 53
        guard let port, (1...65_535).contains(port) else { return nil }
        return .server(address: String(parts[0]), port: port)
    }

    /// Parses `1.5`, `1.5s`, `250ms` or `2m` into seconds.
    static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count).trimmingBlanks()).map { $0 * scale }
        }
        return Double(text)
    }

    /// Parses a size: bytes, or a number with KiB, MiB or GiB.
    static func parseSize(_ text: String) -> Int64? {
        let units: [(String, Int64)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            return Int64(text.dropLast(suffix.count).trimmingBlanks()).flatMap { $0 > 0 ? $0 * scale : nil }
        }
        return Int64(text).flatMap { $0 > 0 ? $0 : nil }
    }
}

extension String {
    /// The string without any trailing copies of `suffix`.
    func trimmingSuffix(_ suffix: String) -> String {
        var result = self
        while result.hasSuffix(suffix) && result.count > suffix.count { result.removeLast(suffix.count) }
        return result
    }
}

extension XferConfig {
    /// The settings in effect, in config-file form.
    public var summary: String {
        var lines = ["[options]"]
        lines.append("MirrorRoot = \(mirrorRoot?.description ?? "(none: HTTP mirrors only)")")
        lines += gateways.map { "Gateway = \($0)" }
        lines += trustlessGateways.map { "TrustlessGateway = \($0)" }
        lines.append("MountPoint = \(mountPoint ?? "(none)")")
        lines += mirrorlists.map { "Include = \($0)" }
        lines.append("StateDir = \(stateDir)")
        lines.append("HedgeDelay = \(hedgeDelay)s")
        lines.append("ConnectTimeout = \(connectTimeout)s")
        lines.append("StallTimeout = \(stallTimeout)s")
        lines.append("Layout = \(layout)")
        lines.append("PacmanConfig = \(pacmanConfig)")
        lines.append("API = \(api ?? "none")")
        if apiAuthorization != nil { lines.append("APIAuth = (set)") }
        lines.append("Import = \(importParameters)")
        lines += routingEndpoints.map { "RoutingEndpoint = \($0)" }
        switch dnsServer {
        case .system: lines.append("DNSServer = system")
        case .server(let address, let port): lines.append("DNSServer = \(address):\(port)")
        case .https(let url): lines.append("DNSServer = \(url)")
        }
        lines.append("RootCacheTime = \(rootCacheTime)s")
        lines.append("RootStaleLimit = \(rootStaleLimit)s")
        lines.append("ResolveTimeout = \(resolveTimeout)s")
        lines.append("ParallelDownloads = \(parallelDownloads)")
        lines.append("ServeTimeout = \(serveTimeout)s")
        lines.append("SegmentThreshold = \(segmentThreshold.map { "\($0)" } ?? "none")")
        lines.append("RequireVerified = \(requireVerified ? "yes" : "no")")
        return lines.joined(separator: "\n") + "\n"
    }
}
