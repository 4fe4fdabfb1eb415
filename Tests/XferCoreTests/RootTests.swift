import Foundation
import Testing
@testable import XferCore

/// The parts of root resolution that need no server: DNSLink values, the RPC's JSON, the
/// freshness rule and the state file. Resolution against real servers (dnsmasq, the stand-in
/// kubo RPC, gateways and routing endpoints serving signed records) is in the e2e suite.
@Suite struct RootTests {
    @Test func aDNSLinkIsOneIPFSOrIPNSPath() throws {
        let name = "_dnslink.mirror.test"
        #expect(try DNSLinkLookup.dnslink(from: ["v=spf1", "dnslink=/ipfs/bafkqaaa/arch"], name: name) == "/ipfs/bafkqaaa/arch")
        #expect(try DNSLinkLookup.dnslink(from: ["dnslink=/ipns/k51x", "dnslink=/ipns/k51x"], name: name) == "/ipns/k51x")
        #expect(try DNSLinkLookup.dnslink(from: ["dnslink=QmLegacy"], name: name) == "/ipfs/QmLegacy")
        #expect(throws: DNSLinkLookup.Failure.noDNSLink(name)) { try DNSLinkLookup.dnslink(from: ["hello"], name: name) }
        #expect(throws: DNSLinkLookup.Failure.several(name, ["/ipfs/a", "/ipfs/b"])) {
            try DNSLinkLookup.dnslink(from: ["dnslink=/ipfs/a", "dnslink=/ipfs/b"], name: name)
        }
        #expect(throws: DNSLinkLookup.Failure.badValue(name, "https://x")) {
            try DNSLinkLookup.dnslink(from: ["dnslink=https://x"], name: name)
        }
    }

    @Test func base64ForDoHAndBasicCredentials() {
        #expect(Base64.encodeURLSafe([]) == "")
        #expect(Base64.encodeURLSafe([0xfb]) == "-w")
        #expect(Base64.encodeURLSafe([0xfb, 0xff]) == "-_8")
        #expect(Base64.encodeURLSafe(Array("hello".utf8)) == "aGVsbG8")
        #expect(Base64.encode(Array("user:pass".utf8)) == "dXNlcjpwYXNz")
        #expect(Base64.encode(Array("ab".utf8)) == "YWI=")
        #expect(KuboRPC.authorizationHeader(secret: "basic:user:pass") == "Basic dXNlcjpwYXNz")
        #expect(KuboRPC.authorizationHeader(secret: "bearer:s3cret") == "Bearer s3cret")
        #expect(KuboRPC.authorizationHeader(secret: "basic:dXNlcjpwYXNz") == "Basic dXNlcjpwYXNz")  // already base64
    }

    @Test func theRPCAnswerIsReadForItsPath() {
        #expect(KuboRPC.string("Path", in: #"{"Path":"/ipfs/bafy\/x"}"#) == "/ipfs/bafy/x")
        #expect(KuboRPC.string("Path", in: "{ \"Other\": \"Path\", \"Path\" : \"a\\u00e9\\n\" }") == "a\u{e9}\n")
        #expect(KuboRPC.string("Path", in: #"{"Message":"could not resolve name","Code":0}"#) == nil)
        #expect(KuboRPC.string("Path", in: #"{"Path":"unterminated"#) == nil)
    }

    @Test func aDatabaseComesFromIPFSOnlyWhenTheRootIsNotBehind() {
        #expect(FreshnessGuard.allowsIPFS(root: 200, mirror: 100))
        #expect(FreshnessGuard.allowsIPFS(root: 100, mirror: 100))
        #expect(!FreshnessGuard.allowsIPFS(root: 99, mirror: 100))
        #expect(!FreshnessGuard.allowsIPFS(root: nil, mirror: 100))
        #expect(FreshnessGuard.allowsIPFS(root: nil, mirror: nil))
        #expect(FreshnessGuard.number(Array("1795292418\n".utf8)) == 1_795_292_418)
        #expect(FreshnessGuard.number(Array("<html>".utf8)) == nil)
    }

    @Test func answersAreFreshForTheirTTLAndUsableStaleForTheLimit() {
        let root = ResolvedRoot(path: "/ipfs/bafkqaaa", source: "test", ttl: 300, resolvedAt: 1000)
        #expect(root.isFresh(now: 1299))
        #expect(!root.isFresh(now: 1300))
        #expect(!root.isFresh(now: 999))  // a clock that went back
        #expect(root.isUsableStale(now: 5000, limit: 86_400))
        #expect(!root.isUsableStale(now: 100_000, limit: 86_400))
    }

    @Test func theCacheKeepsAnswersAndOnlyRaisesSequences() throws {
        let directory = try TemporaryDirectory()
        let cache = RootCache(state: try StateDirectory(path: directory.path))
        let answer = ResolvedRoot(path: "/ipfs/bafkqaaa/arch", source: "gateway http://x", sequence: 7, ttl: 60,
                                  validUntil: 99_999, resolvedAt: 1000, lastUpdate: 123)
        try cache.store(answer, for: "/ipns/k51a", sequences: ["k51a": 7])
        #expect(cache.entry(for: "/ipns/k51a") == answer)
        #expect(cache.sequences() == ["k51a": 7])
        try cache.store(answer, for: "/ipns/k51a", sequences: ["k51a": 3])
        #expect(cache.sequences() == ["k51a": 7])
        var plain = answer
        plain.sequence = nil
        plain.validUntil = nil
        plain.lastUpdate = nil
        plain.ttl = .infinity
        try cache.store(plain, for: "/ipns/other.test")
        #expect(cache.entry(for: "/ipns/other.test") == plain)
        #expect(cache.entry(for: "/ipns/k51a") == answer)
    }

    @Test func aCorruptStateFileIsIgnored() async throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path)
        try directory.write("roots", Array("/ipns/a\tnot a path\n\0garbage\n/ipns/b\t/ipfs/bafkqaaa\tx\t-\tNaNx\t-\t1\t-\n".utf8))
        try directory.write("ipns-sequences", Array("k51a\tminus one\n".utf8))
        let cache = RootCache(state: state)
        #expect(cache.entry(for: "/ipns/a") == nil)
        #expect(cache.entry(for: "/ipns/b") == nil)
        #expect(cache.sequences().isEmpty)
        let answer = ResolvedRoot(path: "/ipfs/bafkqaaa", source: "test", ttl: 60, resolvedAt: 1)
        let stored: Bool = await cache.whileLocked(timeout: 1) {
            (try? cache.store(answer, for: "/ipns/a")) != nil
        }
        #expect(stored)
        #expect(cache.entry(for: "/ipns/a") == answer)
    }

    @Test func theIndexGivesEachFilesCIDSizeAndHash() throws {
        let hash = String(repeating: "ab", count: 32)
        let text = """
        # ipfs-xfer-index 1
        # import: profile=unixfs-v0-2015
        core/os/x86_64/core.db\tbafkqaaa\t0\t-
        core/os/x86_64/a.pkg.tar.zst\tQmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH\t123\t\(hash)
        core/os/x86_64/bad-size\tbafkqaaa\tlots\t-
        core/os/x86_64/bad-hash\tbafkqaaa\t1\tnot-hex
        core/os/x86_64/bad-cid\tnot-a-cid\t1\t-
        """
        let index = try MirrorIndex(bytes: Array(text.utf8))
        #expect(index.entry(for: "core/os/x86_64/core.db")?.size == 0)
        #expect(index.entry(for: "core/os/x86_64/core.db")?.sha256 == nil)
        let package = index.entry(for: "core/os/x86_64/a.pkg.tar.zst")
        #expect(package?.cid.description == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
        #expect(package?.size == 123 && package?.sha256 == hash)
        for missing in ["core/os/x86_64/a.pkg", "os/x86_64/core.db", "core/os/x86_64/bad-size", "core/os/x86_64/bad-hash",
                        "core/os/x86_64/bad-cid", "# import: profile=unixfs-v0-2015"] {
            #expect(index.entry(for: missing) == nil, "\(missing)")
        }
        #expect(index.importParameters == .unixfsV0_2015)
        #expect(try MirrorIndex(bytes: Array("# ipfs-xfer-index 1\n# import: chunker=big\n".utf8)).importParameters == nil)
        #expect(throws: MirrorIndex.FormatError.noHeader) { try MirrorIndex(bytes: Array("core.db\tbafkqaaa\t0\t-\n".utf8)) }
    }
}
