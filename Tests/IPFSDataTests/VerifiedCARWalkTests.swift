import Foundation
import Testing
@testable import IPFSData

/// The streaming CAR verifier on DAGs held in memory. (The DAG's CIDs are not what is tested
/// here; the end-to-end suite feeds it CARs of real kubo blocks through the stand-in gateway.)
@Suite struct VerifiedCARWalkTests {
    /// Collects blocks in memory.
    final class MemorySink: BlockSink, @unchecked Sendable {
        let lock = NSLock()
        var blocks: [CID: [UInt8]] = [:]
        func put(_ cid: CID, _ block: [UInt8]) throws {
            lock.lock()
            blocks[cid] = block
            lock.unlock()
        }
    }

    /// A directory `d` holding `file.bin` (many small chunks, two tree levels) and `other`.
    struct Fixture {
        /// The sections of a stream for a walk from byte `from`: the blocks that hold bytes from
        /// there on, depth first; `dups: false` leaves out a block already sent.
        func sections(from: Int = 0, dups: Bool = true) -> [(CID, [UInt8])] {
            var sections: [(CID, [UInt8])] = []
            var sent = Set<CID>()
            func visit(_ cid: CID, start: Int, path: Bool) {
                let block = blocks[cid]!
                if dups || sent.insert(cid).inserted { sections.append((cid, block)) }
                guard cid.codec == .dagPB, let node = try? PBNode(decoding: block[...]),
                      let data = try? UnixFSData(decoding: (node.data ?? [])[...]) else { return }
                if data.kind == .directory {
                    visit(node.links.first { $0.name == "file.bin" }!.cid, start: 0, path: false)
                    return
                }
                var offset = start + (data.data?.count ?? 0)
                for (link, size) in zip(node.links, data.blockSizes) {
                    if offset + Int(size) > from { visit(link.cid, start: offset, path: false) }
                    offset += Int(size)
                }
            }
            visit(root, start: 0, path: true)
            return sections
        }

        let root: CID
        let blocks: [CID: [UInt8]]
        let payload: [UInt8]

        /// The path blocks and the file DAG, depth first, as a trustless gateway sends them.
        func dfs(_ cid: CID, into sections: inout [(CID, [UInt8])]) {
            let block = blocks[cid]!
            sections.append((cid, block))
            guard cid.codec == .dagPB, let node = try? PBNode(decoding: block[...]) else { return }
            let data = try? UnixFSData(decoding: (node.data ?? [])[...])
            if data?.kind == .directory {
                if let link = node.links.first(where: { $0.name == "file.bin" }) { dfs(link.cid, into: &sections) }
            } else {
                for link in node.links { dfs(link.cid, into: &sections) }
            }
        }

        func car(_ sections: [(CID, [UInt8])], trailer: [UInt8] = []) -> [UInt8] {
            var bytes = Varint.encode(UInt64(CARWriter.header(rootBytes: root.bytes).count)) + CARWriter.header(rootBytes: root.bytes)
            for (cid, block) in sections {
                bytes += Varint.encode(UInt64(cid.bytes.count + block.count)) + cid.bytes + block
            }
            return bytes + trailer
        }
    }

    func fixture(repeating: Bool = false) async throws -> Fixture {
        let directory = NSTemporaryDirectory() + "walk-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/d", withIntermediateDirectories: true)
        var generator = SystemRandomNumberGenerator()
        // Repeating: 1 KiB chunks of which most are the same, so the DAG needs blocks again.
        let payload = (0..<300_000).map { index in
            repeating && (index / 1024) % 5 != 0 ? UInt8(index % 1024 % 7) : UInt8.random(in: 0...255, using: &generator)
        }
        try Data(payload).write(to: URL(fileURLWithPath: directory + "/d/file.bin"))
        try Data("other".utf8).write(to: URL(fileURLWithPath: directory + "/d/other"))
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var parameters = ImportParameters.unixfsV0_2015
        parameters.chunkSize = 1024
        parameters.maxLinks = 16
        let sink = MemorySink()
        let root = try await TreeImporter(parameters: parameters, sink: sink).importPath(directory + "/d")
        return Fixture(root: root.cid, blocks: sink.blocks, payload: payload)
    }

    /// Feeds `bytes` in uneven pieces; returns what the walk emitted and the error, if any.
    func run(_ walk: VerifiedCARWalk, _ bytes: [UInt8]) -> VerifiedCARWalk.Failure? {
        var offset = 0
        var size = 1
        do {
            while offset < bytes.count {
                let end = min(bytes.count, offset + size)
                try bytes[offset..<end].withUnsafeBytes { try walk.consume($0) }
                offset = end
                size = size * 3 % 70_001 + 1
            }
            try walk.endOfStream()
            return nil
        } catch let failure as VerifiedCARWalk.Failure {
            return failure
        } catch {
            return .malformed("\(error)")
        }
    }

    func walk(_ fixture: Fixture, output: Output) -> VerifiedCARWalk {
        VerifiedCARWalk(root: fixture.root, path: ["file.bin"]) { output.bytes += $0 }
    }

    final class Output: @unchecked Sendable {
        var bytes: [UInt8] = []
    }

    @Test func aCleanStreamGivesTheFile() async throws {
        let fixture = try await fixture()
        var sections: [(CID, [UInt8])] = []
        fixture.dfs(fixture.root, into: &sections)
        #expect(sections.count > 300)
        let output = Output()
        let walk = walk(fixture, output: output)
        #expect(run(walk, fixture.car(sections)) == nil)
        #expect(walk.isComplete)
        #expect(output.bytes == fixture.payload)
    }

    @Test func aCorruptBlockStopsBeforeItsBytes() async throws {
        let fixture = try await fixture()
        var sections: [(CID, [UInt8])] = []
        fixture.dfs(fixture.root, into: &sections)
        let index = sections.count / 2
        sections[index].1[sections[index].1.count - 1] ^= 1
        let output = Output()
        let failure = run(walk(fixture, output: output), fixture.car(sections))
        #expect(failure == .badBlock(sections[index].0))
        #expect(output.bytes == Array(fixture.payload.prefix(output.bytes.count)))
        #expect(output.bytes.count < fixture.payload.count)
    }

    @Test func reorderedDuplicatedAndForeignBlocksAreRefused() async throws {
        let fixture = try await fixture()
        var sections: [(CID, [UInt8])] = []
        fixture.dfs(fixture.root, into: &sections)
        var reordered = sections
        reordered.swapAt(100, 101)
        #expect(run(walk(fixture, output: Output()), fixture.car(reordered)).map { if case .unexpectedBlock = $0 { true } else { false } } == true)
        var duplicated = sections
        duplicated.insert(sections[100], at: 101)
        #expect(run(walk(fixture, output: Output()), fixture.car(duplicated)).map { if case .unexpectedBlock = $0 { true } else { false } } == true)
        var foreign = sections
        let stranger = Array("foreign".utf8)
        foreign[100] = (CID.hashing(stranger, codec: .raw, version: 1), stranger)
        #expect(run(walk(fixture, output: Output()), fixture.car(foreign)).map { if case .unexpectedBlock = $0 { true } else { false } } == true)
        #expect(run(walk(fixture, output: Output()), fixture.car(sections, trailer: [1, 2, 3])) != nil)
        // Trailing bytes that read as the start of a section are refused too, not taken as a cut.
        #expect(run(walk(fixture, output: Output()), fixture.car(sections, trailer: [0x05, 0x01])) == .extraData)
        let huge = [UInt8](repeating: 7, count: CARReader.maximumBlockSize + 1)
        var oversized = sections
        oversized.insert((CID.hashing(huge, codec: .raw, version: 1), huge), at: 1)
        #expect(run(walk(fixture, output: Output()), fixture.car(oversized)).map { if case .blockTooLarge = $0 { true } else { false } } == true)
    }

    @Test func aStreamThatEndsEarlyIsFilledBlockByBlock() async throws {
        let fixture = try await fixture()
        var sections: [(CID, [UInt8])] = []
        fixture.dfs(fixture.root, into: &sections)
        let output = Output()
        let walk = walk(fixture, output: output)
        let cut = fixture.car(Array(sections.prefix(150)))
        #expect(run(walk, Array(cut.dropLast(10))) == nil)  // ends inside a section
        var filled = 0
        while let next = walk.nextNeeded {
            try walk.provide(fixture.blocks[next]!, for: next)
            filled += 1
        }
        #expect(filled >= sections.count - 150)
        #expect(output.bytes == fixture.payload)
        #expect(throws: VerifiedCARWalk.Failure.self) { try walk.provide([1], for: fixture.root) }
    }

    @Test func aPathThatIsNotThereIsNotFound() async throws {
        let fixture = try await fixture()
        let walk = VerifiedCARWalk(root: fixture.root, path: ["missing"]) { _ in }
        let failure = run(walk, fixture.car([(fixture.root, fixture.blocks[fixture.root]!)]))
        #expect(failure.map { if case .notFound = $0 { true } else { false } } == true)
    }

    @Test func aRepeatedBlockIsTakenFromTheStreamOrFromMemory() async throws {
        let fixture = try await fixture(repeating: true)
        let withDups = fixture.sections(dups: true)
        let withoutDups = fixture.sections(dups: false)
        #expect(withoutDups.count < withDups.count)
        for sections in [withDups, withoutDups] {
            let output = Output()
            let walk = walk(fixture, output: output)
            #expect(run(walk, fixture.car(sections)) == nil)
            #expect(walk.isComplete)
            let whole = output.bytes == fixture.payload
            #expect(whole)
        }
    }

    @Test func aResumedWalkTakesOnlyTheBlocksFromItsOffset() async throws {
        let fixture = try await fixture()
        for from in [1, 1023, 1024, 150_000, 299_999] {
            let sections = fixture.sections(from: from)
            #expect(sections.count < fixture.sections().count || from < 1024)
            let output = Output()
            let walk = VerifiedCARWalk(root: fixture.root, path: ["file.bin"], from: UInt64(from)) { output.bytes += $0 }
            #expect(run(walk, fixture.car(sections)) == nil)
            #expect(walk.isComplete)
            let rest = output.bytes == Array(fixture.payload[from...])
            #expect(rest)
            #expect(walk.fileBytes == UInt64(fixture.payload.count - from))
        }
        // A gateway that ignores the range and sends the whole file is refused.
        let whole = VerifiedCARWalk(root: fixture.root, path: ["file.bin"], from: 150_000) { _ in }
        #expect(run(whole, fixture.car(fixture.sections())).map { if case .unexpectedBlock = $0 { true } else { false } } == true)
        #expect(VerifiedCARWalk.entityBytesParameter(from: 150_000) == "150000:*")
    }

    @Test func onlyACARv1ResponseIsRead() throws {
        try VerifiedCARWalk.checkContentType("application/vnd.ipld.car; version=1; order=dfs; dups=y")
        try VerifiedCARWalk.checkContentType("application/vnd.ipld.car")
        try VerifiedCARWalk.checkContentType(nil)
        #expect(throws: VerifiedCARWalk.Failure.notCAR("text/html")) { try VerifiedCARWalk.checkContentType("text/html") }
        #expect(throws: VerifiedCARWalk.Failure.self) { try VerifiedCARWalk.checkContentType("application/vnd.ipld.car; version=2") }
    }
}
