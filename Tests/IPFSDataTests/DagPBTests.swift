import Testing
@testable import IPFSData

@Suite struct DagPBTests {
    @Test func helloWorldLeafIsByteExact() throws {
        // ipfs.md §1.4: "hello world" under the v0 profile.
        let data = UnixFSData(kind: .file, data: Array("hello world".utf8), fileSize: 11).encoded()
        let block = PBNode(links: [], data: data).encoded()
        #expect(block == [0x0A, 0x11, 0x08, 0x02, 0x12, 0x0B] + Array("hello world".utf8) + [0x18, 0x0B])
        #expect(CID.hashing(block, codec: .dagPB, version: 0).description == "Qmf412jQZiuVUtdgnB36FXFX7xg5V6KEbSJ4dpQuhkLyfD")
        #expect(PBNode(links: [], data: UnixFSData(kind: .directory).encoded()).encoded() == [0x0A, 0x02, 0x08, 0x01])
    }

    @Test func decodesWhatItEncodes() throws {
        let child = try CID("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH")
        let node = PBNode(
            links: [.init(cid: child, name: "", tsize: 262_158), .init(cid: child, name: "a/ü", tsize: 9)],
            data: UnixFSData(kind: .file, fileSize: 262_145, blockSizes: [262_144, 1]).encoded())
        let decoded = try PBNode(decoding: node.encoded()[...])
        #expect(decoded == node)
        let unixfs = try UnixFSData(decoding: decoded.data![...])
        #expect(unixfs.kind == .file)
        #expect(unixfs.blockSizes == [262_144, 1])
        #expect(unixfs.fileSize == 262_145)
    }

    @Test(arguments: [
        [UInt8]([0x0A, 0x02, 0x08, 0x01, 0x0A, 0x02, 0x08, 0x01]),  // Data twice
        [0x1A, 0x00],  // unknown field 3
        [0x12, 0x05, 0x0A, 0x03, 0x01, 0x02, 0x03],  // link with a bad CID
        [0x0A, 0x05, 0x08],  // Data running past the end
        [0x0D, 0x00, 0x00, 0x00, 0x00],  // fixed32 wire type
        [0x12, 0x24, 0x12, 0x00, 0x0A, 0x22] + [0x12, 0x20] + [UInt8](repeating: 1, count: 32),  // Name before Hash
    ])
    func strictDecodingRefusesMalformedNodes(bytes: [UInt8]) {
        #expect(throws: PBNode.DecodeError.self) { try PBNode(decoding: bytes[...]) }
    }

    @Test func unixfsDataNeedsAType() {
        #expect(throws: UnixFSData.DecodeError.self) { try UnixFSData(decoding: [0x18, 0x01][...]) }
        #expect(throws: UnixFSData.DecodeError.self) { try UnixFSData(decoding: [0x08, 0x09][...]) }
    }

    @Test func murmur3MatchesTheHAMTFixture() {
        // ipfs.md §1.5: in the conformance fixture, "470.txt" sits in bucket 00 at depth 0.
        #expect(Murmur3.hamtBucket(Murmur3.hamtBits(Array("470.txt".utf8)), depth: 0) == 0x00)
        // Reference values of MurmurHash3_x64_128 (seed 0), first half.
        #expect(Murmur3.hash128([]).h1 == 0)
        #expect(Murmur3.hash128(Array("hello".utf8)).h1 == 0xcbd8_a7b3_41bd_9b02)
    }

    @Test func linkSizeFormulaMatchesKubo() {
        // kubo's TestProtobufHelpers.LinkSerializedSize cases.
        #expect(PBNode.encodedLinkSize(cidLength: 34, nameLength: 255, tsize: 0) == 299)
        #expect(PBNode.encodedLinkSize(cidLength: 36, nameLength: 255, tsize: 0) == 301)
        #expect(PBNode.encodedLinkSize(cidLength: 36, nameLength: 10, tsize: 0) == 54)
        #expect(PBNode.encodedLinkSize(cidLength: 36, nameLength: 255, tsize: 34_359_738_367) == 305)
    }
}
