import CurlTransfer
import Testing
@testable import XferCore

@Suite struct VerificationTests {
    let payload = pseudoRandomBytes(100_000)

    func record() -> PackageRecord {
        PackageRecord(fileName: "p-1-1-any.pkg.tar.zst", size: Int64(payload.count), sha256: sha256Hex(payload))
    }

    func feed(_ file: DownloadFile, _ bytes: some Collection<UInt8>) throws {
        try Array(bytes).withUnsafeBytes { try file.receive($0) }
    }

    @Test func acceptsTheRightBytesInPieces() throws {
        let directory = try TemporaryDirectory()
        let file = try DownloadFile(path: directory.path + "/f", expectation: .exact(record()), progress: TransferProgress())
        try feed(file, payload[0..<4096])
        try feed(file, payload[4096...])
        try file.verify()
        #expect(try directory.read("f") == payload)
        #expect(file.progress.total == Int64(payload.count))
    }

    @Test func oneFlippedByteIsCaught() throws {
        let directory = try TemporaryDirectory()
        var corrupt = payload
        corrupt[50_000] ^= 0x01
        let file = try DownloadFile(path: directory.path + "/f", expectation: .exact(record()), progress: TransferProgress())
        try feed(file, corrupt)
        #expect(throws: VerificationError.self) { try file.verify() }
    }

    @Test func truncatedAndOversizedAreCaught() throws {
        let directory = try TemporaryDirectory()
        let short = try DownloadFile(path: directory.path + "/a", expectation: .exact(record()), progress: TransferProgress())
        try feed(short, payload.dropLast())
        #expect(throws: VerificationError.wrongSize(expected: Int64(payload.count), actual: Int64(payload.count - 1))) {
            try short.verify()
        }
        let long = try DownloadFile(path: directory.path + "/b", expectation: .exact(record()), progress: TransferProgress())
        try feed(long, payload)
        #expect(throws: VerificationError.tooLarge(limit: Int64(payload.count))) { try feed(long, [0]) }
        #expect(throws: VerificationError.tooLarge(limit: Int64(payload.count))) {
            try long.begin(TransferHead(status: 200, contentLength: 1))
        }
    }

    @Test func signaturesAreAtMost16KiB() throws {
        let directory = try TemporaryDirectory()
        let file = try DownloadFile(path: directory.path + "/s", expectation: .signature, progress: TransferProgress())
        try feed(file, [UInt8](repeating: 1, count: 16 * 1024))
        #expect(throws: VerificationError.self) { try feed(file, [1]) }
        let empty = try DownloadFile(path: directory.path + "/e", expectation: .signature, progress: TransferProgress())
        #expect(throws: VerificationError.empty) { try empty.verify() }
    }

    @Test func resumesFromAPartialFileAndHashesItsPrefix() throws {
        let directory = try TemporaryDirectory()
        let partial = try directory.write("old.part", Array(payload.prefix(30_000)))
        let file = try DownloadFile(
            path: directory.path + "/f", expectation: .exact(record()), progress: TransferProgress(), adopting: partial)
        #expect(file.size == 30_000)
        #expect(file.resumedFrom == 30_000)
        #expect(!FileSystem.exists(partial))
        try feed(file, payload[30_000...])
        try file.verify()
        #expect(try directory.read("f") == payload)
    }

    @Test func aBadPrefixFailsAndResetStartsOver() throws {
        let directory = try TemporaryDirectory()
        let partial = try directory.write("old.part", [UInt8](repeating: 0, count: 30_000))
        let file = try DownloadFile(
            path: directory.path + "/f", expectation: .exact(record()), progress: TransferProgress(), adopting: partial)
        try feed(file, payload[30_000...])
        #expect(throws: VerificationError.self) { try file.verify() }
        try file.reset()
        try feed(file, payload)
        try file.verify()
        #expect(try directory.read("f") == payload)
    }

    @Test func databasesMustBeCompleteArchives() throws {
        let directory = try TemporaryDirectory()
        let db = try makeSyncDatabase(in: directory, name: "core.db", packages: [record()], compression: "--zstd")
        let good = try DownloadFile(path: directory.path + "/good", expectation: .database, progress: TransferProgress())
        try feed(good, try FileSystem.readBytes(db))
        try good.verify()
        let page = try DownloadFile(path: directory.path + "/page", expectation: .database, progress: TransferProgress())
        try feed(page, Array("<html>502 Bad Gateway</html>".utf8))
        #expect(throws: VerificationError.self) { try page.verify() }
    }
}
