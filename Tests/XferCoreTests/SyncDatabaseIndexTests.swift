import Glibc
import Testing
@testable import XferCore

/// The sync-db index: its file format, and the lookups that build, reuse and rebuild it.
@Suite struct SyncDatabaseIndexTests {
    /// `count` records with names that sort differently by file and by package name.
    static func records(_ count: Int) -> [PackageRecord] {
        (0..<count).map { number in
            let name = "pkg\(String((number * 7919) % 100_003, radix: 36))"
            return PackageRecord(
                fileName: "\(name)-\(number).0-1-x86_64.pkg.tar.zst", size: Int64(1000 + number),
                sha256: sha256Hex(Array("\(number)".utf8)), name: name)
        }
    }

    static let key = SyncDatabaseIndex.Key(
        path: "/var/lib/pacman/sync/extra.db", info: {
            var info = stat()
            info.st_dev = 5
            info.st_ino = 77
            info.st_size = 10_000_000
            info.st_mtim = timespec(tv_sec: 1_700_000_000, tv_nsec: 123)
            return info
        }())

    func open(_ bytes: [UInt8], key: SyncDatabaseIndex.Key = Self.key) throws -> SyncDatabaseIndex? {
        let directory = try TemporaryDirectory()
        let path = try directory.write("x.idx", bytes)
        return try SyncDatabaseIndex.open(path, for: key)
    }

    @Test func everyRecordIsFoundByFileAndByNameAndNothingElse() throws {
        let records = Self.records(3000)
        let index = try #require(try open(SyncDatabaseIndex.encode(records, for: Self.key)))
        for record in records {
            #expect(try index.record(forFile: record.fileName) == record)
            #expect(try index.record(named: record.name) == record)
        }
        #expect(try index.record(forFile: "absent-1.0-1-x86_64.pkg.tar.zst") == nil)
        #expect(try index.record(forFile: "") == nil)
        #expect(try index.record(forFile: records[0].fileName + "x") == nil)
        #expect(try index.record(named: String(records[0].name.dropLast())) == nil)
    }

    @Test func namesAreComparedAsBytesAndTwinsKeepTheFirstRecord() throws {
        let first = PackageRecord(fileName: "é-1-1-any.pkg.tar.zst", size: 1, sha256: sha256Hex([1]), name: "é")
        let twin = PackageRecord(fileName: "é-1-1-any.pkg.tar.zst", size: 2, sha256: sha256Hex([2]), name: "é")
        let decomposed = PackageRecord(fileName: "e\u{301}-1-1-any.pkg.tar.zst", size: 3, sha256: sha256Hex([3]), name: "e\u{301}")
        let index = try #require(try open(SyncDatabaseIndex.encode([first, twin, decomposed], for: Self.key)))
        #expect(try index.record(forFile: first.fileName) == first)
        #expect(try index.record(forFile: decomposed.fileName) == decomposed)
        #expect(try index.record(named: "e\u{301}") == decomposed)
        #expect(try index.record(named: "é") == first)
    }

    @Test func anIndexOfAnotherDbOrAnotherStateOfItIsNotUsed() throws {
        let bytes = SyncDatabaseIndex.encode(Self.records(10), for: Self.key)
        var other = Self.key
        other.modifiedNanoseconds += 1
        #expect(try open(bytes, key: other) == nil)
        other = Self.key
        other.inode += 1
        #expect(try open(bytes, key: other) == nil)
        other = Self.key
        other.path = "/mnt/var/lib/pacman/sync/extra.db"
        #expect(try open(bytes, key: other) == nil)
    }

    @Test func aTruncatedOrDamagedHeaderIsCorrupt() throws {
        let bytes = SyncDatabaseIndex.encode(Self.records(100), for: Self.key)
        #expect(throws: SyncDatabaseIndex.Corrupt.header) { try open(Array(bytes.prefix(bytes.count - 4))) }
        #expect(throws: SyncDatabaseIndex.Corrupt.header) { try open(Array(bytes.prefix(20))) }
        for offset in [0, 9, 49, 61, 70, 80] {
            var damaged = bytes
            damaged[offset] ^= 0x40
            #expect(throws: SyncDatabaseIndex.Corrupt.header) { try open(damaged) }
        }
    }

    /// A flipped byte anywhere past the header is caught by the first search that reads it, and
    /// no search ever answers wrongly.
    @Test func aDamagedTableOrRecordIsCaughtAndNeverAnswersWrongly() throws {
        let records = Self.records(200)
        let bytes = SyncDatabaseIndex.encode(records, for: Self.key)
        var generator = SystemRandomNumberGenerator()
        var unnoticed = 0
        for _ in 0..<300 {
            var damaged = bytes
            let offset = Int.random(in: 120..<bytes.count, using: &generator)
            damaged[offset] ^= UInt8.random(in: 1...255, using: &generator)
            let index = try #require(try open(damaged))
            var caught = false
            for record in records {
                for lookUp in [{ try index.record(forFile: record.fileName) }, { try index.record(named: record.name) }] {
                    do {
                        #expect(try lookUp() == record)
                    } catch {
                        caught = true
                    }
                }
            }
            if !caught { unnoticed += 1 }
        }
        // Only a byte of the alignment padding between records (~1 in 60 here) goes unnoticed.
        #expect(unnoticed < 30)
    }

    @Test func lookupsBuildTheIndexOnceReuseItAndRebuildItWhenTheDbChanges() throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path + "/state")
        let records = Array(Self.records(40))
        let path = try makeSyncDatabase(in: directory, name: "core.db", packages: records, compression: "--zstd")
        let database = IndexedSyncDatabase(path: path, state: state)
        #expect(try database.record(forFile: records[7].fileName) == records[7])
        let indexPath = IndexedSyncDatabase.indexPath(for: path, in: state.path + "/dbindex")
        let built = try FileSystem.readBytes(indexPath)
        #expect(built == SyncDatabaseIndex.encode(try SyncDatabase(path: path).completeRecords(), for: try #require(.init(path: path))))
        var info = stat()
        #expect(stat(indexPath, &info) == 0 && info.st_mode & 0o777 == 0o664)
        #expect(stat(state.path + "/dbindex", &info) == 0 && info.st_mode & 0o7777 == 0o2775)

        // The index answers on its own: with the db's records changed behind its back but the
        // key the same, it still gives what it was built from.
        #expect(try database.record(named: records[3].name) == records[3])

        // Another db in its place (same size and name, other inode): indexed again.
        let changed = records.map { PackageRecord(fileName: $0.fileName, size: $0.size + 1, sha256: $0.sha256, name: $0.name) }
        let replacement = try makeSyncDatabase(in: directory, name: "core2.db", packages: changed, compression: "--zstd")
        #expect(rename(replacement, path) == 0)
        #expect(try database.record(forFile: records[7].fileName) == changed[7])
        #expect(try FileSystem.readBytes(indexPath) != built)
        #expect(FileSystem.listDirectory(state.path + "/dbindex") == [FileSystem.baseName(indexPath)])
    }

    @Test func aCorruptIndexIsRebuiltAndWithoutStateTheDbIsScanned() throws {
        let directory = try TemporaryDirectory()
        let state = try StateDirectory(path: directory.path + "/state")
        let records = Self.records(30)
        let path = try makeSyncDatabase(in: directory, name: "extra.db", packages: records, compression: "-z")
        let database = IndexedSyncDatabase(path: path, state: state)
        #expect(try database.record(forFile: records[0].fileName) == records[0])
        let indexPath = IndexedSyncDatabase.indexPath(for: path, in: state.path + "/dbindex")
        let good = try FileSystem.readBytes(indexPath)
        var damaged = good
        for offset in stride(from: good.count / 2, to: good.count, by: 64) { damaged[offset] ^= 0xff }
        try FileSystem.writeAtomically(indexPath, bytes: damaged)
        for record in records { #expect(try database.record(forFile: record.fileName) == record) }
        #expect(try FileSystem.readBytes(indexPath) == good)
        try FileSystem.writeAtomically(indexPath, bytes: Array(good.prefix(100)))
        #expect(try database.record(forFile: records[29].fileName) == records[29])
        #expect(try FileSystem.readBytes(indexPath) == good)

        let scanned = IndexedSyncDatabase(path: path, state: nil)
        #expect(try scanned.record(forFile: records[12].fileName) == records[12])
        #expect(try scanned.record(named: records[12].name) == records[12])
        #expect(try scanned.record(forFile: "absent-1-1-any.pkg.tar.zst") == nil)
        #expect(try IndexedSyncDatabase(path: directory.path + "/missing.db", state: state).record(forFile: "x") == nil)
    }

    @Test func pacmanRulesForTheDbPath() throws {
        let directory = try TemporaryDirectory()
        let plain = try directory.write("plain.conf", Array("[options]\nCacheDir = /c/\n[core]\n".utf8))
        let withDB = try directory.write("db.conf", Array("[options]\nDBPath = /srv/db\nDBPath = /second\n".utf8))
        let withRoot = try directory.write("root.conf", Array("[options]\nRootDir = /chroot\n".utf8))
        func dbPath(_ arguments: [String]) throws -> String {
            try PacmanInvocation(arguments: PacmanArguments(arguments)).pacmanConfig(defaultConfig: plain).dbPath
        }
        #expect(try dbPath(["-Syu"]) == "/var/lib/pacman/")
        #expect(try dbPath(["-Sy", "-r", "/mnt"]) == "/mnt/var/lib/pacman/")
        #expect(try dbPath(["-Syr/mnt/"]) == "/mnt/var/lib/pacman/")
        #expect(try dbPath(["--root=/mnt", "-b", "/elsewhere", "-S"]) == "/elsewhere/")
        #expect(try dbPath(["--config", withDB, "--root", "/mnt", "-S"]) == "/srv/db/")
        #expect(try dbPath(["--config=\(withRoot)", "-S"]) == "/chroot/var/lib/pacman/")
        #expect(try dbPath(["--config", withRoot, "-r", "/mnt", "-S"]) == "/mnt/var/lib/pacman/")
        #expect(try PacmanInvocation(arguments: PacmanArguments(["-S", "--cachedir", "/x"]))
            .pacmanConfig(defaultConfig: plain).cacheDirs == ["/x/"])

        // --sysroot: pacman reads its config and everything else inside it.
        let sysroot = directory.path + "/sys"
        _ = try directory.write("sys/etc/pacman.conf", Array("[options]\nDBPath = /db/\n".utf8))
        let inside = try PacmanInvocation(arguments: PacmanArguments(["--sysroot", sysroot, "-Sy"])).pacmanConfig()
        #expect(inside.dbPath == sysroot + "/db/")
        #expect(PacmanInvocation.outsidePrefix("/") == nil)
    }

    @Test func theParentsCommandLineIsRead() throws {
        let argv = try #require(PacmanInvocation.commandLine(of: getpid()))
        #expect(argv.first == CommandLine.arguments.first)
        #expect(argv.count == CommandLine.arguments.count)
        #expect(PacmanInvocation.commandLine(of: 1) == nil)
    }

    @Test func candidatesBesideTheOutput() {
        let sandboxed = SyncDatabaseLocator(
            output: "/mnt/var/cache/pacman/pkg/download-AbC123/a-1-1-any.pkg.tar.zst.part", invocation: nil,
            configuredPacman: "/nonexistent")
        #expect(sandboxed.candidates(repo: "core") == [
            "/mnt/var/cache/pacman/pkg/download-AbC123/core.db", "/mnt/var/cache/pacman/pkg/core.db",
            "/mnt/var/lib/pacman/sync/core.db",
        ])
        #expect(sandboxed.configuredCandidate(repo: "core") == "/var/lib/pacman/sync/core.db")
        let invoked = SyncDatabaseLocator(
            output: "/cache/a.pkg.tar.zst.part", invocation: PacmanInvocation(arguments: try! PacmanArguments(["-b", "/db", "-S"])),
            configuredPacman: "/nonexistent")
        #expect(invoked.candidates(repo: "extra") == ["/db/sync/extra.db", "/cache/extra.db"])
        #expect(SyncDatabaseLocator.finalPath(ofDatabaseAt: "/var/lib/pacman/sync/download-x1/core.db.part")
            == "/var/lib/pacman/sync/core.db")
        #expect(SyncDatabaseLocator.finalPath(ofDatabaseAt: "/db/sync/core.db.part") == "/db/sync/core.db")
    }
}
