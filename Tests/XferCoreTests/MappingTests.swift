import Testing
@testable import XferCore

@Suite struct MappingTests {
    let mirrorlist = Mirrorlist(text: """
    ## Worldwide
    Server = https://geo.mirror.pkgbuild.com/$repo/os/$arch
    #Server = https://commented.example/$repo/os/$arch
    Server = http://mirror.example.org/archlinux/$repo/os/$arch/
    Server = file:///srv/mirror/$repo/os/$arch
    """)

    @Test func mirrorlistKeepsOrderAndDropsComments() {
        #expect(mirrorlist.servers.map(\.text) == [
            "https://geo.mirror.pkgbuild.com/$repo/os/$arch",
            "http://mirror.example.org/archlinux/$repo/os/$arch",
            "file:///srv/mirror/$repo/os/$arch",
        ])
    }

    @Test func mirrorlistDropsRepeatsAtTheirLaterPlaces() {
        let texts = ["http://b/$repo", "http://a/$repo", "http://b/$repo/", "http://c/$repo", "http://a/$repo"]
        #expect(Mirrorlist(servers: texts.map(ServerTemplate.init)).servers.map(\.text)
            == ["http://b/$repo", "http://a/$repo", "http://c/$repo"])
        // Every Arch mirror enabled, each listed twice in a shuffled order: the first of each stays.
        var generator = SystemRandomNumberGenerator()
        let many = (0..<2_000).map { "https://m\($0 % 1_000).example/$repo/os/$arch" }.shuffled(using: &generator)
        var expected: [String] = []
        for text in many where !expected.contains(text) { expected.append(text) }
        #expect(Mirrorlist(servers: many.map(ServerTemplate.init)).servers.map(\.text) == expected)
    }

    @Test func templateMatchesAndExpands() throws {
        let template = ServerTemplate("http://m.example/archlinux/$repo/os/$arch")
        let match = try #require(template.match(url: "http://m.example/archlinux/extra/os/x86_64/a-1:2.0-1-x86_64.pkg.tar.zst"))
        #expect(match.repo == "extra")
        #expect(match.arch == "x86_64")
        #expect(match.file == "a-1:2.0-1-x86_64.pkg.tar.zst")
        #expect(template.match(url: "http://m.example/other/extra/os/x86_64/a") == nil)
        #expect(template.match(url: "http://m.example/archlinux/extra/os/x86_64/sub/a") == nil)
        #expect(template.url(repo: "core", arch: "aarch64", file: "core.db") == "http://m.example/archlinux/core/os/aarch64/core.db")
    }

    @Test func mapsAMirrorlistURLAndListsTheOtherMirrors() throws {
        let mapper = URLMapper(mirrorlist: mirrorlist, layout: .arch)
        let mapping = try mapper.map("http://mirror.example.org/archlinux/core/os/x86_64/core.db")
        #expect(mapping.file == RepoFile(repo: "core", arch: "x86_64", fileName: "core.db"))
        #expect(mapping.file?.kind == .database)
        #expect(mapping.mirrorURLs == [
            "http://mirror.example.org/archlinux/core/os/x86_64/core.db",
            "https://geo.mirror.pkgbuild.com/core/os/x86_64/core.db",
            "file:///srv/mirror/core/os/x86_64/core.db",
        ])
    }

    @Test func mapsAnUnlistedServerByLayout() throws {
        let mapper = URLMapper(mirrorlist: mirrorlist, layout: .arch)
        let mapping = try mapper.map("http://127.0.0.1:9/deep/path/extra/os/x86_64/foo-1-1-any.pkg.tar.zst.sig")
        #expect(mapping.file == RepoFile(repo: "extra", arch: "x86_64", fileName: "foo-1-1-any.pkg.tar.zst.sig"))
        #expect(mapping.file?.kind == .signature)
        #expect(mapping.mirrorURLs.first == "http://127.0.0.1:9/deep/path/extra/os/x86_64/foo-1-1-any.pkg.tar.zst.sig")
        #expect(mapping.mirrorURLs.count == 4)
    }

    @Test func unmappableURLsAreHTTPOnly() throws {
        let mapper = URLMapper(mirrorlist: Mirrorlist(servers: []), layout: .arch)
        #expect(try mapper.map("https://example.org/downloads/foo.pkg.tar.zst").file == nil)
        #expect(try mapper.map("https://example.org/core/os/x86_64/foo?download=1").file == nil)
        #expect(try mapper.map("https://example.org/foo.pkg.tar.zst").mirrorURLs == ["https://example.org/foo.pkg.tar.zst"])
    }

    @Test func customLayout() throws {
        let layout = try Layout(parsing: "stable/$repo/$arch")
        let mapper = URLMapper(mirrorlist: Mirrorlist(servers: []), layout: layout)
        let mapping = try mapper.map("https://manjaro.example/stable/core/x86_64/core.db")
        #expect(mapping.file == RepoFile(repo: "core", arch: "x86_64", fileName: "core.db"))
        #expect(layout.expand(repo: "core", arch: "x86_64") == ["stable", "core", "x86_64"])
    }

    @Test(arguments: [
        "http://m/core/os/x86_64/..",
        "http://m/core/os/x86_64/.hidden",
        "http://m/core/os/x86_64/a%2F..%2F..%2Fetc",
        "http://m/core/os/x86_64/",
        "http://m/core%2F..%2F/os/x86_64/a.pkg.tar.zst",
        "http://m/core/os/x86_64/a\\b",
    ])
    func refusesNamesThatCouldEscapeTheRoot(url: String) {
        let mapper = URLMapper(mirrorlist: Mirrorlist(servers: [ServerTemplate("http://m/$repo/os/$arch")]), layout: .arch)
        #expect(throws: URLMapper.MappingError.self) { try mapper.map(url) }
    }

    @Test func kinds() {
        #expect(RepoFile(repo: "core", arch: "x", fileName: "core.files").kind == .database)
        #expect(RepoFile(repo: "core", arch: "x", fileName: "core.db.sig").kind == .signature)
        #expect(RepoFile(repo: "core", arch: "x", fileName: "a-1-1-any.pkg.tar.xz").kind == .package)
        #expect(RepoFile(repo: "core", arch: "x", fileName: "core.db.tar.gz").kind == .other)
    }

    @Test func mirrorRootPaths() throws {
        let root = try MirrorRoot(parsing: "/ipfs/QmfSdLzNNRBvWYHvXKMrrXQ3wv3dtiy75RVUtAthR5P2rB/arch")
        #expect(root.path(appending: ["core", "os", "x86_64", "core.db"])
            == "/ipfs/QmfSdLzNNRBvWYHvXKMrrXQ3wv3dtiy75RVUtAthR5P2rB/arch/core/os/x86_64/core.db")
        #expect(SourcePlan.mountPath(root: root, mountPoint: "/ipfs", relative: ["core.db"])
            == "/ipfs/QmfSdLzNNRBvWYHvXKMrrXQ3wv3dtiy75RVUtAthR5P2rB/arch/core.db")
        let ipns = try MirrorRoot(parsing: "/ipns/mirror.example.org")
        #expect(SourcePlan.mountPath(root: ipns, mountPoint: "/mnt/ipfs", relative: ["core.db"]) == "/mnt/ipns/mirror.example.org/core.db")
        #expect(PercentEncoding.encodeSegment("a b+c:1") == "a%20b+c:1")
    }
}
