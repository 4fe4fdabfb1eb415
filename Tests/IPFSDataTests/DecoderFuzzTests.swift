import Testing
@testable import IPFSData

/// Property-based fuzzing of every decoder that reads untrusted bytes: mutated valid inputs
/// (bit flips, truncation, insertion, splices) and random bytes must be refused or accepted
/// cleanly, never crash or hang. Each test prints how many inputs it ran.
@Suite struct DecoderFuzzTests {
    /// A small deterministic generator (xorshift64*), so failures reproduce.
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return state &* 0x2545_F491_4F6C_DD1D
        }
    }

    static let iterations = 20_000

    /// One mutation of `seed`.
    static func mutate(_ seed: [UInt8], _ random: inout Generator) -> [UInt8] {
        var bytes = seed
        switch random.next() % 6 {
        case 0 where !bytes.isEmpty:
            let index = Int(random.next() % UInt64(bytes.count))
            bytes[index] ^= UInt8(1 << (random.next() % 8))
        case 1 where !bytes.isEmpty:
            bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count))))
        case 2:
            let index = bytes.isEmpty ? 0 : Int(random.next() % UInt64(bytes.count + 1))
            bytes.insert(UInt8(truncatingIfNeeded: random.next()), at: index)
        case 3 where !bytes.isEmpty:
            let index = Int(random.next() % UInt64(bytes.count))
            bytes[index] = [0x00, 0x7F, 0x80, 0xFF][Int(random.next() % 4)]
        case 4:
            bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        default:
            if bytes.count > 2 {
                let a = Int(random.next() % UInt64(bytes.count))
                let b = Int(random.next() % UInt64(bytes.count))
                bytes.swapAt(a, b)
            }
        }
        return bytes
    }

    /// Runs `body` on mutations of the seeds; returns how many inputs ran. It yields now and
    /// then, so that the timing-sensitive tests running beside it get the cooperative threads.
    static func fuzz(_ seeds: [[UInt8]], seed: UInt64, _ body: ([UInt8]) -> Void) async -> Int {
        var random = Generator(state: seed)
        var corpus = seeds
        for round in 0..<iterations {
            let input = mutate(corpus[Int(random.next() % UInt64(corpus.count))], &random)
            body(input)
            if round % 7 == 0 && input.count < 4096 { corpus.append(input) }  // mutations of mutations
            if round % 200 == 0 { await Task.yield() }
        }
        return iterations
    }

    static var seeds: (dagPB: [[UInt8]], unixfs: [[UInt8]], car: [[UInt8]]) {
        let child = CID.hashing(Array("x".utf8), codec: .raw, version: 1)
        let file = UnixFSData(kind: .file, fileSize: 3, blockSizes: [1, 2]).encoded()
        let node = PBNode(links: [.init(cid: child, name: "", tsize: 1), .init(cid: child, name: "n", tsize: 2)], data: file).encoded()
        let shard = UnixFSData(kind: .hamtShard, data: [0x01, 0x80], hashType: 0x22, fanout: 256).encoded()
        let header = CARWriter.header(rootBytes: child.bytes)
        let car = Varint.encode(UInt64(header.count)) + header + Varint.encode(UInt64(child.bytes.count + 1)) + child.bytes + Array("x".utf8)
        return ([node, PBNode(links: [], data: shard).encoded(), [0x0A, 0x02, 0x08, 0x01]], [file, shard], [car])
    }

    @Test func dagPBAndUnixFS() async {
        let runs = await Self.fuzz(Self.seeds.dagPB + Self.seeds.unixfs, seed: 1) { input in
            if let node = try? PBNode(decoding: input[...]) {
                #expect((try? PBNode(decoding: node.encoded()[...])) == node)  // what decodes re-encodes stably
            }
            _ = try? UnixFSData(decoding: input[...])
        }
        print("fuzzed dag-pb and UnixFS decoding with \(runs) inputs")
    }

    @Test func varintsCIDsAndMultibase() async {
        let cid = CID.hashing(Array("y".utf8), codec: .dagPB, version: 1)
        let runs = await Self.fuzz([cid.bytes, Varint.encode(UInt64.max), Array(cid.description.utf8)], seed: 2) { input in
            var offset = 0
            _ = try? Varint.decode(input, at: &offset)
            offset = 0
            _ = try? CID(bytes: input, offset: &offset)
            _ = try? CID(String(decoding: input, as: UTF8.self))
            _ = try? Multibase.decode(String(decoding: input, as: UTF8.self))
            _ = try? Multibase.decodeBase58(String(decoding: input, as: UTF8.self))
        }
        print("fuzzed varint, CID and multibase decoding with \(runs) inputs")
    }

    @Test func carHeadersAndStreams() async {
        let root = CID.hashing(Array("x".utf8), codec: .raw, version: 1)
        let runs = await Self.fuzz(Self.seeds.car, seed: 3) { input in
            _ = try? CARHeader.parse(input)
            let walk = VerifiedCARWalk(root: root, path: []) { _ in }
            _ = try? input.withUnsafeBytes { try walk.consume($0) }
            _ = try? walk.endOfStream()
        }
        print("fuzzed CAR headers and the streaming CAR walk with \(runs) inputs")
    }
}
