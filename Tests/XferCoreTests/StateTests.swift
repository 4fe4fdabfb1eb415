import Glibc
import Synchronization
import Testing
@testable import XferCore

@Suite struct StateTests {
    @Test func backoffDoublesAndSuccessClears() {
        var health = SourceHealth()
        health.recordFailure("gateway http://127.0.0.1:8080", now: 1000)
        #expect(health.isDown("gateway http://127.0.0.1:8080", now: 1029))
        #expect(!health.isDown("gateway http://127.0.0.1:8080", now: 1030))
        health.recordFailure("gateway http://127.0.0.1:8080", now: 1030)
        #expect(health.records["gateway http://127.0.0.1:8080"] == .init(failures: 2, downUntil: 1090))
        for _ in 0..<30 { health.recordFailure("gateway http://127.0.0.1:8080", now: 2000) }
        #expect(health.records["gateway http://127.0.0.1:8080"]?.downUntil == 2000 + SourceHealth.maximumBackoff)
        health.recordSuccess("gateway http://127.0.0.1:8080")
        #expect(health.records.isEmpty)
    }

    @Test func textRoundTripsAndIgnoresGarbage() {
        var health = SourceHealth()
        health.recordFailure("mirror https://a.example", now: 10)
        health.recordFailure("mount /ipfs", now: 20)
        #expect(SourceHealth(text: health.text) == health)
        #expect(SourceHealth(text: "garbage\n\u{0}\u{1}\n12 x y\n40 1 mirror https://b\n").records
            == ["mirror https://b": .init(failures: 1, downUntil: 40)])
    }

    @Test func pathNamesSplitAtTheLastSlash() {
        let cases: [(path: String, directory: String, base: String)] = [
            ("/", "/", ""), ("a", ".", "a"), ("/a", "/", "a"), ("a/b", "a", "b"), ("a/b/", "a", ""),
            ("//", "/", ""), ("../../pool/é/ü.pkg", "../../pool/é", "ü.pkg"), ("é/", ".", ""),
        ]
        for (path, directory, base) in cases {
            #expect(FileSystem.directoryName(path) == directory, "\(path)")
            #expect(FileSystem.baseName(path) == base, "\(path)")
        }
    }

    @Test func stateDirectoryMergesAndLogs() throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path + "/state")
        try state.updateHealth([.failed("mirror http://a")], now: 100)
        try state.updateHealth([.failed("mirror http://b")], now: 100)
        #expect(state.loadHealth().isDown("mirror http://a", now: 101))
        #expect(state.loadHealth().isDown("mirror http://b", now: 101))
        try state.updateHealth([.succeeded("mirror http://a")], now: 102)
        #expect(!state.loadHealth().isDown("mirror http://a", now: 103))
        let entry = TransferLogEntry(time: 5, file: "core.db", bytes: 1234, seconds: 0.25, kind: .gateway,
                                     source: "gateway http://127.0.0.1:8080")
        try state.log(entry)
        try state.log(entry)
        let lines = try FileSystem.readText(directory.path + "/state/transfers.log").split(separator: "\n")
        #expect(lines.count == 2)
        #expect(TransferLogEntry(line: lines[0]) == entry)
    }

    @Test func anUnverifiedPackageIsFlaggedInTheLogAndCountedByStats() throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path + "/state")
        let unverified = TransferLogEntry(time: 7, file: "a-1-1-any.pkg.tar.zst", bytes: 300, seconds: 0.1, kind: .mirror,
                                          source: "mirror http://m", unverified: true)
        #expect(unverified.line.hasSuffix("\tmirror http://m\tunverified\n"))
        #expect(TransferLogEntry(line: unverified.line.dropLast()) == unverified)
        #expect(TransferLogEntry(line: "7\tf\t1\t0.1\tmirror\ts\tsomething") == nil)
        try state.log(unverified)
        try state.log(TransferLogEntry(time: 8, file: "b", bytes: 50, seconds: 0.1, kind: .gateway, source: "g"))
        let stats = TransferStats(state: state)
        #expect(stats.unverifiedFiles == 1 && stats.unverifiedBytes == 300)
        #expect(stats.text.contains("unverified: 1 packages, 300 bytes"))
        #expect(stats.prometheus.contains("ipfs_xfer_unverified_files_total 1\n"))
    }

    @Test func aStateDirThatCannotBeWrittenIsAnError() {
        #expect(throws: SystemError.self) { try StateDirectory(path: "/proc/ipfs-xfer-state") }
    }

    @Test func workspaceKeepsTheLargestPartialFile() throws {
        let directory = try TemporaryDirectory()
        let output = directory.path + "/p.pkg.tar.zst.part"
        try directory.write("p.pkg.tar.zst.part", [1, 2, 3])
        try directory.write(".p.pkg.tar.zst.part.xfer-99-1", [1, 2, 3, 4, 5])
        try directory.write(".p.pkg.tar.zst.part.xfer-99-2", [1])
        try directory.write("unrelated", [9])
        let workspace = Workspace(output: output)
        workspace.preparePrefix(resumable: true, limit: 100)
        let prefix = try #require(workspace.takePrefix())
        #expect(try FileSystem.readBytes(prefix) == [1, 2, 3, 4, 5])
        #expect(!FileSystem.exists(output))
        #expect(FileSystem.listDirectory(directory.path).sorted() == [FileSystem.baseName(prefix), "unrelated"].sorted())
        workspace.removeTemporaryFiles()
        #expect(FileSystem.exists(prefix))  // a killed run's file is only ever taken over, then renamed
    }

    @Test func workspaceDropsPartialFilesThatCannotBeResumed() throws {
        let directory = try TemporaryDirectory()
        try directory.write("core.db.part", [1, 2, 3])
        let workspace = Workspace(output: directory.path + "/core.db.part")
        workspace.preparePrefix(resumable: false, limit: nil)
        #expect(workspace.takePrefix() == nil)
        #expect(FileSystem.listDirectory(directory.path).isEmpty)
    }

    /// pacman 7.1 leaks `CacheDir/download-XXXXXX/` when a download is interrupted and gives the
    /// next run a fresh one; a run without DownloadUser leaves its temporary file in CacheDir.
    @Test func workspaceTakesOverPartialsFromOtherSandboxDirectories() throws {
        let cache = try TemporaryDirectory()
        let name = "p.pkg.tar.zst.part"
        try cache.write("download-AAAAAA/\(name)", [1, 2, 3, 4])
        try cache.write("download-BBBBBB/.\(name).xfer-77-1", [1, 2, 3, 4, 5, 6])
        try cache.write("download-BBBBBB/other.pkg.tar.zst.part", [9])
        try cache.write(".\(name).xfer-66-1", [1, 2])
        try cache.write("download-CCCCCC/.keep", [])
        let workspace = Workspace(output: cache.path + "/download-CCCCCC/\(name)")
        workspace.preparePrefix(resumable: true, limit: 100)
        let prefix = try #require(workspace.takePrefix())
        #expect(try FileSystem.readBytes(prefix) == [1, 2, 3, 4, 5, 6], "the largest of all")
        #expect(FileSystem.directoryName(prefix) == cache.path + "/download-CCCCCC")
        #expect(!FileSystem.exists(cache.path + "/download-AAAAAA"), "an emptied leaked directory is removed")
        #expect(FileSystem.listDirectory(cache.path + "/download-BBBBBB") == ["other.pkg.tar.zst.part"])
        #expect(!FileSystem.exists(cache.path + "/.\(name).xfer-66-1"))
        workspace.removeTemporaryFiles()
    }

    @Test func workspaceInCacheDirLooksInLeakedSandboxDirectories() throws {
        let cache = try TemporaryDirectory()
        try cache.write("download-AAAAAA/p.pkg.tar.zst.part", [1, 2, 3])
        let workspace = Workspace(output: cache.path + "/p.pkg.tar.zst.part")
        workspace.preparePrefix(resumable: true, limit: 100)
        #expect(try FileSystem.readBytes(try #require(workspace.takePrefix())) == [1, 2, 3])
        #expect(!FileSystem.exists(cache.path + "/download-AAAAAA"))
        workspace.removeTemporaryFiles()
    }

    @Test func workspaceSweepsOtherDownloadsTemporaryFilesADayOld() throws {
        let cache = try TemporaryDirectory()
        try cache.write(".old.pkg.tar.zst.part.xfer-123-1", [1])
        try cache.write(".new.pkg.tar.zst.part.xfer-124-1", [1])
        try cache.write(".hidden-but-not-ours", [1])
        var old = [timespec(tv_sec: time(nil) - 2 * 86_400, tv_nsec: 0), timespec(tv_sec: time(nil) - 2 * 86_400, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, cache.path + "/.old.pkg.tar.zst.part.xfer-123-1", &old, 0) == 0)
        let workspace = Workspace(output: cache.path + "/p.pkg.tar.zst.part")
        workspace.preparePrefix(resumable: true, limit: 100)
        #expect(FileSystem.listDirectory(cache.path).sorted() == [".hidden-but-not-ours", ".new.pkg.tar.zst.part.xfer-124-1"])
        workspace.removeTemporaryFiles()
    }

    @Test func aTransactionWideWarningIsSaidOncePerTransaction() throws {
        let directory = try TemporaryDirectory()
        let warnings = TransactionWarnings(.thisProcess, directory: directory.path)
        let said = Mutex<[String]>([])
        for _ in 0..<3 { warnings.once("state", "StateDir is not writable") { message in said.withLock { $0.append(message) } } }
        warnings.once("resolve", "the resolver is down") { message in said.withLock { $0.append(message) } }
        #expect(said.withLock { $0 } == ["StateDir is not writable", "the resolver is down"])
        // Another transaction (here: the parent process) is told again.
        TransactionWarnings(.parent, directory: directory.path).once("state", "again") { message in
            said.withLock { $0.append(message) }
        }
        #expect(said.withLock { $0 }.last == "again")
        #expect(TransactionWarnings.startTime(of: getpid()) != nil)
    }
}
