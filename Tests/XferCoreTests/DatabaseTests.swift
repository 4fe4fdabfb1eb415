import Testing
@testable import XferCore

@Suite struct DatabaseTests {
    let records = [
        PackageRecord(fileName: "hello-a-1.0-1-any.pkg.tar.zst", size: 301152,
                      sha256: "6ca902636e44490135698cfa8e1dfaf96a9874bd2e99f59ba654db932a822bae", name: "hello-a"),
        PackageRecord(fileName: "hello-1:2.3-4-x86_64.pkg.tar.xz", size: 10,
                      sha256: String(repeating: "ab", count: 32), name: "hello"),
    ]

    @Test(arguments: ["-z", "--zstd", "-J", "-j"])
    func findsRecordsInEveryCompression(compression: String) throws {
        let directory = try TemporaryDirectory()
        let path = try makeSyncDatabase(in: directory, name: "core.db", packages: records, compression: compression)
        let db = SyncDatabase(path: path)
        #expect(try db.record(forFile: "hello-a-1.0-1-any.pkg.tar.zst") == records[0])
        #expect(try db.record(forFile: "hello-1:2.3-4-x86_64.pkg.tar.xz") == records[1])
        #expect(try db.record(forFile: "hello-a-1.0-2-any.pkg.tar.zst") == nil)
        #expect(try db.completeRecords().count == 2)
        #expect(try db.records(named: ["hello", "absent"]) == ["hello": records[1]])
    }

    @Test(arguments: ["--format=pax", "--format=gnutar", "--format=ustar"])
    func longEntryNamesInEveryTarFormat(format: String) throws {
        let directory = try TemporaryDirectory()
        let long = PackageRecord(
            fileName: "lib" + String(repeating: "x", count: 120) + "-1.0-1-any.pkg.tar.zst", size: 5,
            sha256: String(repeating: "cd", count: 32), name: "lib" + String(repeating: "x", count: 120))
        var path = try makeSyncDatabase(in: directory, name: "extra.db", packages: records + [long], compression: "-z")
        if format != "--format=pax" {
            // Rebuild the same tree in the other formats (repo-add's bsdtar writes pax).
            path = directory.path + "/extra-\(format.dropFirst(9)).db"
            try run(["bsdtar", format, "-czf", path, "-C", directory.path + "/tree-extra.db", "."])
        }
        #expect(try SyncDatabase(path: path).record(forFile: long.fileName) == long)
        #expect(try SyncDatabase(path: path).record(forFile: records[1].fileName) == records[1])
    }

    @Test func parsesDescLikeRepoAdd() {
        let desc = """
        %FILENAME%
        hello-b-1.0-1-any.pkg.tar.zst

        %NAME%
        hello-b

        %DEPENDS%
        glibc
        bash

        %CSIZE%
        301152

        %SHA256SUM%
        6CA902636E44490135698CFA8E1DFAF96A9874BD2E99F59BA654DB932A822BAE

        """
        #expect(PackageRecord(desc: desc) == PackageRecord(
            fileName: "hello-b-1.0-1-any.pkg.tar.zst", size: 301152,
            sha256: "6ca902636e44490135698cfa8e1dfaf96a9874bd2e99f59ba654db932a822bae", name: "hello-b"))
        #expect(PackageRecord(desc: "%FILENAME%\nx\n\n%CSIZE%\n1\n") == nil)
        #expect(PackageRecord(desc: "%FILENAME%\nx\n\n%CSIZE%\n1\n\n%SHA256SUM%\nnothex\n") == nil)
    }

    @Test func rejectsWhatIsNotADatabase() throws {
        let directory = try TemporaryDirectory()
        let html = try directory.write("error.db", Array("<html><body>404 Not Found</body></html>".utf8))
        #expect(throws: SyncDatabase.ReadError.self) { try SyncDatabase(path: html).completeRecords() }
        let path = try makeSyncDatabase(in: directory, name: "core.db", packages: records, compression: "-z")
        let bytes = try FileSystem.readBytes(path)
        let truncated = try directory.write("truncated.db", Array(bytes.prefix(bytes.count / 2)))
        #expect(throws: SyncDatabase.ReadError.self) { try SyncDatabase(path: truncated).completeRecords() }
        #expect(throws: SyncDatabase.ReadError.self) { try SyncDatabase(path: directory.path + "/missing.db").completeRecords() }
    }
}
