import Glibc
import Foundation
import Testing
@testable import XferCore

@Suite struct ConfigTests {
    @Test func defaultsWithoutAnyFile() throws {
        let config = XferConfig()
        #expect(config.mirrorRoot == nil)
        #expect(config.gateways == ["http://127.0.0.1:8080"])
        #expect(config.layout == .arch)
        #expect(config.hedgeDelay == 1)
    }

    @Test func parsesEveryKey() throws {
        let text = """
        # comment
        [options]
        MirrorRoot = /ipns/k51qzi5uqu5dlj2qkibv67ep4sdsa73fuyyf1ywbq7mh6vv5t4lrrc3c0v5kav/arch
        Gateway = http://127.0.0.1:8080/
        Gateway = http://10.0.0.2:8080
        MountPoint = /ipfs/
        Include = /dev/null
        StateDir = /tmp/state
        HedgeDelay = 250ms
        ConnectTimeout = 2s
        StallTimeout = 1m
        Layout = stable/$repo/$arch
        PacmanConfig = /etc/pacman.conf
        API = http://127.0.0.1:5001/
        RoutingEndpoint = https://delegated-ipfs.dev
        DNSServer = 127.0.0.1:5353
        RootCacheTime = 2m
        RootStaleLimit = 3600
        ResolveTimeout = 3s
        ParallelDownloads = 12
        ServeTimeout = 2500ms
        RequireVerified = yes
        """
        let config = try XferConfig(file: IniFile(text: text, path: "t.conf"))
        #expect(config.requireVerified)
        #expect(XferConfig().requireVerified == false)
        #expect(config.mirrorRoot?.namespace == .ipns)
        #expect(config.mirrorRoot?.segments == ["arch"])
        #expect(config.gateways == ["http://127.0.0.1:8080", "http://10.0.0.2:8080"])
        #expect(config.mountPoint == "/ipfs")
        #expect(config.mirrorlists == ["/dev/null"])
        #expect(config.stateDir == "/tmp/state")
        #expect(config.hedgeDelay == 0.25)
        #expect(config.connectTimeout == 2)
        #expect(config.stallTimeout == 60)
        #expect(config.layout.description == "stable/$repo/$arch")
        #expect(config.api == "http://127.0.0.1:5001")
        #expect(config.routingEndpoints == ["https://delegated-ipfs.dev"])
        #expect(config.dnsServer == .server(address: "127.0.0.1", port: 5353))
        #expect(config.rootCacheTime == 120)
        #expect(config.rootStaleLimit == 3600)
        #expect(config.resolveTimeout == 3)
        #expect(config.parallelDownloads == 12)
        #expect(config.serveTimeout == 2.5)
    }

    @Test func dnsServers() {
        #expect(XferConfig.parseDNSServer("system") == .system)
        #expect(XferConfig.parseDNSServer("10.0.0.1") == .server(address: "10.0.0.1", port: 53))
        #expect(XferConfig.parseDNSServer("https://dns.example/dns-query") == .https("https://dns.example/dns-query"))
        for bad in ["10.0.0", "10.0.0.256", "10.0.0.1:0", "10.0.0.1:x", "resolver.example", ""] {
            #expect(XferConfig.parseDNSServer(bad) == nil, "\(bad)")
        }
        let none = try? XferConfig(file: IniFile(text: "[options]\nAPI = none\n", path: "t.conf"))
        #expect(none != nil && none?.api == nil)
    }

    @Test(arguments: [
        ("[options]\nFoo = 1\n", 2, "unknown key 'Foo'"),
        ("Gateway = http://x\n", 1, "outside any [section]"),
        ("[options]\n\nGateway = ftp://x\n", 3, "Gateway must be an http"),
        ("[options]\nHedgeDelay = soon\n", 2, "HedgeDelay must be a duration"),
        ("[options]\nParallelDownloads = 0\n", 2, "ParallelDownloads must be a number from 1 to 64"),
        ("[options]\nRequireVerified = maybe\n", 2, "RequireVerified must be yes or no, not 'maybe'"),
        ("[options]\nMirrorRoot = /ipfs/../etc\n", 2, "is not a CID"),
        ("[options]\nMirrorRoot = ipfs/Qm\n", 2, "is not an /ipfs/<cid>"),
        ("[options]\nMirrorRoot = /ipfs/QmX/.hidden\n", 2, "not allowed"),
        ("[options]\nLayout = os/$arch\n", 2, "must contain $repo"),
        ("[options]\nLayout = $repo/../x\n", 2, "must be $repo, $arch or a plain name"),
        ("[options]\nInclude = /nonexistent/mirrorlist\n", 2, "does not exist"),
        ("[repo]\nServer = x\n", 2, "unknown section [repo]"),
        ("[options\n", 1, "malformed section header"),
        ("[options]\nStateDir =\n", 2, "needs a value"),
        ("[options]\nAPI = 127.0.0.1:5001\n", 2, "API must be kubo's RPC URL"),
        ("[options]\nRoutingEndpoint = delegated-ipfs.dev\n", 2, "RoutingEndpoint must be an http"),
        ("[options]\nDNSServer = resolver.example\n", 2, "DNSServer must be system"),
        ("[options]\nRootCacheTime = a while\n", 2, "RootCacheTime must be a duration"),
    ])
    func badInputNamesFileAndLine(text: String, line: Int, message: String) throws {
        let error = #expect(throws: ConfigError.self) {
            try XferConfig(file: IniFile(text: text, path: "/etc/ipfs-xfer.conf"))
        }
        #expect(error?.line == line)
        #expect(error?.description.hasPrefix("/etc/ipfs-xfer.conf:\(line): ") == true)
        #expect(error?.description.contains(message) == true, "\(String(describing: error))")
    }

    @Test func exampleParsesAndMatchesContrib() throws {
        let config = try XferConfig(file: IniFile(text: ExampleConfig.text, path: "example"))
        #expect(config.mirrorRoot == nil)  // everything in the example is commented out
        let contrib = try FileSystem.readText(#filePath.replacingOccurrences(
            of: "Tests/XferCoreTests/ConfigTests.swift", with: "contrib/ipfs-xfer.conf"))
        #expect(contrib == ExampleConfig.text)
        // Every key the parser knows is documented in the example.
        for key in XferConfig.knownKeys {
            #expect(ExampleConfig.text.contains("#\(key) = "), "\(key) is not in the example")
        }
    }

    @Test func durations() {
        #expect(XferConfig.parseDuration("1.5") == 1.5)
        #expect(XferConfig.parseDuration("1.5s") == 1.5)
        #expect(XferConfig.parseDuration("250ms") == 0.25)
        #expect(XferConfig.parseDuration("2m") == 120)
        #expect(XferConfig.parseDuration("x") == nil)
    }

    @Test func pacmanConfigDBPath() throws {
        let path = "/tmp/ipfs-xfer-test-pacman-\(getpid()).conf"
        try FileSystem.writeAtomically(path, "[options]\nDBPath = /srv/db\nArchitecture = auto\n[core]\nInclude = /x\n")
        defer { FileSystem.remove(path) }
        #expect(PacmanConfig(path: path).syncDatabase(repo: "core") == "/srv/db/sync/core.db")
        #expect(PacmanConfig(path: "/nonexistent").dbPath == "/var/lib/pacman/")
    }

    @Test func databaseSignaturesFollowPacmansSigLevelRules() throws {
        let path = "/tmp/ipfs-xfer-test-siglevel-\(getpid()).conf"
        try FileSystem.writeAtomically(path, """
            [options]
            SigLevel = Required DatabaseOptional
            [core]
            Include = /x
            [unsigned]
            SigLevel = PackageRequired DatabaseNever
            [strict]
            SigLevel = Required
            """)
        defer { FileSystem.remove(path) }
        let config = PacmanConfig(path: path)
        #expect(config.databaseSignature(repo: "core") == .optional)
        #expect(config.databaseSignature(repo: "unsigned") == .never)
        #expect(config.databaseSignature(repo: "strict") == .required)
        #expect(config.wantsPackageSignatures(repo: "unsigned"))
        #expect(PacmanConfig(path: "/nonexistent").databaseSignature(repo: "core") == .optional, "pacman's default")
    }

    @Test func aDatabasesNewestEntryTellsItsAge() throws {
        let directory = try TemporaryDirectory()
        let record = PackageRecord(fileName: "a-1-1-any.pkg.tar.zst", size: 1, sha256: String(repeating: "0", count: 64))
        let path = try makeSyncDatabase(in: directory, name: "core.db", packages: [record], compression: "-z")
        let newest = try SyncDatabase(path: path).newestEntryTime()
        #expect(abs(newest - Int(time(nil))) < 600)
        try run(["touch", "-d", "2020-01-01", directory.path + "/tree-core.db/a-1-1/desc", directory.path + "/tree-core.db/a-1-1"])
        try run(["bsdtar", "-zcf", directory.path + "/old.db", "-C", directory.path + "/tree-core.db", "a-1-1"])
        #expect(try SyncDatabase(path: directory.path + "/old.db").newestEntryTime() < newest - 86_400)
    }
}
