import Foundation
import Testing
@testable import XferCore

/// The seeding hook's local parts: pacman.conf, finding cached files, the queue, the stats.
/// Seeding into a node (the stand-in kubo RPC, real pacman running the hook) is in the e2e suite.
@Suite struct SeedTests {
    @Test func pacmanConfigGivesCacheDirsReposAndArchitecture() throws {
        let directory = try TemporaryDirectory()
        let path = try directory.write("pacman.conf", Array("""
        [options]
        DBPath = /srv/db
        CacheDir = /srv/cache
        CacheDir = /srv/cache2/
        Architecture = x86_64 x86_64_v3
        [core]
        Include = /etc/pacman.d/mirrorlist
        [extra]
        Server = http://x/$repo
        [core]
        SigLevel = Never
        """.utf8))
        let config = PacmanConfig(path: path)
        #expect(config.dbPath == "/srv/db/")
        #expect(config.cacheDirs == ["/srv/cache/", "/srv/cache2/"])
        #expect(config.repos == ["core", "extra"])
        #expect(config.architecture == "x86_64")
        let defaults = PacmanConfig(path: "/nonexistent")
        #expect(defaults.cacheDirs == ["/var/cache/pacman/pkg/"])
        #expect(!defaults.architecture.isEmpty && defaults.architecture != "auto")
    }

    @Test func cachedFilesAreFoundByPackageNameWithTheirSignatures() throws {
        let directory = try TemporaryDirectory()
        let records = [
            PackageRecord(fileName: "demo-1.0-1-x86_64.pkg.tar.zst", size: 3, sha256: String(repeating: "a", count: 64)),
            PackageRecord(fileName: "other-2.0-1-any.pkg.tar.zst", size: 3, sha256: String(repeating: "b", count: 64)),
        ]
        _ = try makeSyncDatabase(in: directory, name: "db/sync/core.db", packages: records, compression: "-z")
        try directory.write("cache/demo-1.0-1-x86_64.pkg.tar.zst", [1, 2, 3])
        try directory.write("cache/demo-1.0-1-x86_64.pkg.tar.zst.sig", [4])
        try directory.write("cache/download-x1/other-2.0-1-any.pkg.tar.zst", [1, 2, 3])  // pacman 7.1's leftovers
        let conf = try directory.write("pacman.conf", Array(
            "[options]\nDBPath = \(directory.path)/db\nCacheDir = \(directory.path)/cache\nArchitecture = x86_64\n[core]\nServer = x\n".utf8))
        let (targets, missing) = CacheLookup(pacman: PacmanConfig(path: conf), state: nil).targets(for: ["demo", "other", "absent"], now: 5)
        #expect(targets.map(\.fileName) == ["demo-1.0-1-x86_64.pkg.tar.zst", "demo-1.0-1-x86_64.pkg.tar.zst.sig"])
        #expect(targets.first?.cachePath == directory.path + "/cache/demo-1.0-1-x86_64.pkg.tar.zst")
        #expect(targets.first?.relativePath(layout: .arch) == "core/os/x86_64/demo-1.0-1-x86_64.pkg.tar.zst")
        #expect(missing == ["other", "absent"])
    }

    @Test func theQueueSkipsWhatIsSeededAndSurvivesDamage() throws {
        let directory = try TemporaryDirectory()
        let queue = SeedQueue(state: try StateDirectory(path: directory.path))
        let demo = SeedTarget(repo: "core", arch: "x86_64", fileName: "demo.pkg.tar.zst", cachePath: "/c/demo.pkg.tar.zst",
                              queuedAt: 5)
        let sig = SeedTarget(repo: "core", arch: "x86_64", fileName: "demo.pkg.tar.zst.sig", cachePath: "/c/demo.pkg.tar.zst.sig",
                             queuedAt: 5)
        try queue.add([demo, sig])
        #expect(queue.pending() == [demo, sig])
        try queue.finish(demo, seeded: .init(fileName: demo.fileName, cid: "bafkqaaa", size: 3, time: 7, cachePath: demo.cachePath))
        try queue.finish(sig, seeded: nil)
        #expect(queue.pending().isEmpty)
        #expect(queue.seeded().map(\.cid) == ["bafkqaaa"])
        try queue.add([demo])  // seeded from the same cache path already
        #expect(queue.pending().isEmpty)
        try directory.write("seed-queue", Array("bad line\nx.pkg\tcore\tx86_64\trelative/path\t1\n../up\tcore\tx86_64\t/c/up\t1\nx.pkg\tcore\tx86_64\t/c/x\tsoon\n".utf8))
        #expect(queue.pending().isEmpty)
        try queue.forget(demo.fileName)
        #expect(queue.seeded().isEmpty)
        let stats = TransferStats(state: try StateDirectory(path: directory.path))
        #expect(stats.seededFiles == 0 && stats.pendingSeeds == 0)
    }

    @Test func statsSumTheTransferLog() throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path)
        for (kind, bytes) in [(SourceKind.gateway, 300), (.mirror, 100), (.trustless, 600), (.gateway, 0)] {
            try state.log(TransferLogEntry(time: 1, file: "f", bytes: Int64(bytes), seconds: 0.5, kind: kind, source: "s"))
        }
        let stats = TransferStats(state: state)
        #expect(stats.files[.gateway] == 2 && stats.bytes[.gateway] == 300)
        #expect(stats.ipfsBytes == 900)
        #expect(stats.text.contains("from IPFS: 900 of 1000 bytes (90%)"))
        #expect(stats.prometheus.contains("ipfs_xfer_transfer_bytes_total{kind=\"gateway\"} 300\n"))
        #expect(stats.prometheus.contains("ipfs_xfer_transfer_files_total{kind=\"mount\"} 0\n"))
        #expect(stats.prometheus.contains("ipfs_xfer_seed_pending 0\n"))
    }
}
