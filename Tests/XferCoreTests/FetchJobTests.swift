import Glibc
import Testing
@testable import XferCore

/// The whole job on local parts: file:// mirrors, a plain directory standing in for the /ipfs
/// mount, and a loopback socket that never answers standing in for a hung gateway. The real
/// pacman, nginx, FUSE and kubo content are exercised by the end-to-end suite.
@Suite struct FetchJobTests {
    static let cid = "QmfSdLzNNRBvWYHvXKMrrXQ3wv3dtiy75RVUtAthR5P2rB"
    let payload = pseudoRandomBytes(700_000, seed: 7)
    let fileName = "demo-1.0-1-any.pkg.tar.zst"

    /// A mirror directory, a sync db listing the package, a "mount" and a cache dir.
    struct Fixture {
        let directory: TemporaryDirectory
        var config: XferConfig
        var cache: String { directory.path + "/cache" }
        var output: String { cache + "/\(name).part" }
        let name: String
    }

    /// The fixture for `payload` (this suite's 700 kB one by default) and its copy under the mount.
    func fixture(payload: [UInt8]? = nil, mountCopy: [UInt8]? = nil, gateway: String = "http://127.0.0.1:1") throws -> Fixture {
        let payload = payload ?? self.payload
        let directory = try TemporaryDirectory()
        try directory.write("mirror1/core/os/x86_64/\(fileName)", payload)
        try directory.write("mirror2/core/os/x86_64/\(fileName)", payload)
        try directory.write("cache/.keep", [])
        if let mountCopy { try directory.write("ipfs/\(Self.cid)/core/os/x86_64/\(fileName)", mountCopy) }
        let record = PackageRecord(fileName: fileName, size: Int64(payload.count), sha256: sha256Hex(payload))
        _ = try makeSyncDatabase(in: directory, name: "db/sync/core.db", packages: [record], compression: "-z")
        try directory.write("pacman.conf", Array("[options]\nDBPath = \(directory.path)/db/\n".utf8))
        try directory.write("mirrorlist", Array("""
            Server = file://\(directory.path)/mirror1/$repo/os/$arch
            Server = file://\(directory.path)/mirror2/$repo/os/$arch

            """.utf8))
        var config = XferConfig()
        config.mirrorRoot = try MirrorRoot(parsing: "/ipfs/\(Self.cid)")
        config.gateways = [gateway]
        config.mountPoint = directory.path + "/ipfs"
        config.mirrorlists = [directory.path + "/mirrorlist"]
        config.stateDir = directory.path + "/state"
        config.pacmanConfig = directory.path + "/pacman.conf"
        config.hedgeDelay = 30  // mirrors join only when IPFS fails, so outcomes do not depend on load
        config.connectTimeout = 1
        config.stallTimeout = 2
        return Fixture(directory: directory, config: config, name: fileName)
    }

    func job(_ fixture: Fixture, url: String? = nil) -> FetchJob {
        FetchJob(
            url: url ?? "file://\(fixture.directory.path)/mirror1/core/os/x86_64/\(fileName)",
            output: fixture.output, config: fixture.config, userAgent: nil, showsProgress: false, warn: { _ in })
    }

    @Test func theMountServesWhenItHasTheFile() async throws {
        let fixture = try fixture(mountCopy: payload)
        let outcome = try await job(fixture).run()
        #expect(outcome.kind == .mount)
        #expect(try FileSystem.readBytes(fixture.output) == payload)
        #expect(FileSystem.listDirectory(fixture.cache).sorted() == [".keep", "\(fileName).part"])
    }

    @Test func aCorruptMountCopyFallsBackToTheMirror() async throws {
        var corrupt = payload
        corrupt[123_456] ^= 0xFF
        let fixture = try fixture(mountCopy: corrupt)
        let outcome = try await job(fixture).run()
        #expect(outcome.kind == .mirror)
        #expect(try FileSystem.readBytes(fixture.output) == payload)
        let health = try StateDirectory(path: fixture.config.stateDir).loadHealth()
        #expect(health.isDown("mount \(fixture.config.mountPoint!)", now: Int64(time(nil))))
    }

    @Test func aMissingFirstMirrorFallsToTheNextInsideOneCall() async throws {
        let fixture = try fixture()
        FileSystem.remove(fixture.directory.path + "/mirror1/core/os/x86_64/\(fileName)")
        let outcome = try await job(fixture).run()
        #expect(outcome.source == "mirror file://")
        #expect(try FileSystem.readBytes(fixture.output) == payload)
        let log = try FileSystem.readText(fixture.config.stateDir + "/transfers.log")
        #expect(log.contains("\t\(fileName)\t\(payload.count)\t"))
    }

    @Test func everySourceDownIsACleanFailureWithNoOutput() async throws {
        let fixture = try fixture()
        for mirror in ["mirror1", "mirror2"] {
            FileSystem.remove(fixture.directory.path + "/\(mirror)/core/os/x86_64/\(fileName)")
        }
        try fixture.directory.write("cache/\(fileName).part", [1, 2, 3])  // an earlier partial file
        let error = await #expect(throws: FetchError.self) { try await job(fixture).run() }
        #expect(error?.description.contains("no source could serve it") == true)
        #expect(FileSystem.listDirectory(fixture.cache) == [".keep"])
    }

    @Test func aMirrorServingWrongBytesIsSkipped() async throws {
        let fixture = try fixture()
        try fixture.directory.write("mirror1/core/os/x86_64/\(fileName)", Array(payload.dropLast()) + [0])
        let outcome = try await job(fixture).run()
        #expect(outcome.kind == .mirror)
        #expect(try FileSystem.readBytes(fixture.output) == payload)
    }

    @Test func resumesAPartialOutput() async throws {
        var fixture = try fixture()
        // Only the refused gateway before the mirrors, so the mirror gets the prefix.
        fixture.config.mountPoint = nil
        try fixture.directory.write("cache/\(fileName).part", Array(payload.prefix(400_000)))
        let outcome = try await job(fixture).run()
        #expect(outcome.resumedFrom == 400_000)
        #expect(try FileSystem.readBytes(fixture.output) == payload)
    }

    @Test func aBadPartialOutputIsDownloadedAgain() async throws {
        let fixture = try fixture()
        try fixture.directory.write("cache/\(fileName).part", [UInt8](repeating: 7, count: 400_000))
        let outcome = try await job(fixture).run()
        #expect(outcome.resumedFrom == 0)
        #expect(try FileSystem.readBytes(fixture.output) == payload)
    }

    @Test func aHungGatewayCostsOnlyTheHedgeDelay() async throws {
        let server = try HangingServer()
        var fixture = try fixture(gateway: "http://127.0.0.1:\(server.port)")
        fixture.config.hedgeDelay = 1
        fixture.config.stallTimeout = 30  // what waiting for the hung gateway would cost
        let start = Monotonic.nanoseconds()
        let outcome = try await job(fixture).run()
        let seconds = Monotonic.seconds(since: start)
        #expect(outcome.kind == .mirror)
        // The hedge delay, far short of the stall timeout (with room for a loaded machine).
        #expect(seconds >= 1 && seconds < 10, "took \(seconds) s")
        // The slow gateway is remembered: the next call does not wait for it.
        let health = try StateDirectory(path: fixture.config.stateDir).loadHealth()
        #expect(health.isDown("gateway http://127.0.0.1:\(server.port)", now: Int64(time(nil))))
        FileSystem.remove(fixture.output)
        let again = Monotonic.nanoseconds()
        _ = try await job(fixture).run()
        #expect(Monotonic.seconds(since: again) < 0.9)
    }

    @Test func databasesAreNeverResumedAndMustBeValid() async throws {
        let fixture = try fixture()
        let db = try FileSystem.readBytes(fixture.directory.path + "/db/sync/core.db")
        try fixture.directory.write("mirror1/core/os/x86_64/core.db", Array("<html>oops</html>".utf8))
        try fixture.directory.write("mirror2/core/os/x86_64/core.db", db)
        try fixture.directory.write("cache/core.db.part", Array(db.prefix(10)))
        let job = FetchJob(
            url: "file://\(fixture.directory.path)/mirror1/core/os/x86_64/core.db",
            output: fixture.cache + "/core.db.part", config: fixture.config, userAgent: nil, showsProgress: false,
            warn: { _ in })
        let outcome = try await job.run()
        #expect(outcome.resumedFrom == 0)
        #expect(try FileSystem.readBytes(fixture.cache + "/core.db.part") == db)
    }

    @Test func anUnwritableOutputDirectoryIsNamed() async throws {
        let fixture = try fixture()
        let job = FetchJob(url: "file:///x/core/os/x86_64/core.db", output: "/nonexistent/cache/core.db.part",
                           config: fixture.config, userAgent: nil, showsProgress: false, warn: { _ in })
        let error = await #expect(throws: FetchError.self) { try await job.run() }
        #expect(error?.description.contains("cannot write to /nonexistent/cache") == true)
    }
}
