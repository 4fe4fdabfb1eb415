import Testing
@testable import IPFSData

@Suite struct MultiformatsTests {
    static let varints: [(UInt64, [UInt8])] = [
        (0, [0]), (1, [1]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
        (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
    ]

    @Test(arguments: varints)
    func varintsRoundTrip(value: UInt64, bytes: [UInt8]) throws {
        #expect(Varint.encode(value) == bytes)
        #expect(Varint.length(value) == bytes.count)
        var offset = 0
        #expect(try Varint.decode(bytes, at: &offset) == value)
        #expect(offset == bytes.count)
    }

    @Test func badVarintsAreRefused() {
        var offset = 0
        #expect(throws: Varint.DecodeError.truncated) { try Varint.decode([0x80], at: &offset) }
        #expect(throws: Varint.DecodeError.notMinimal) { try Varint.decode([0x80, 0x00], at: &offset) }
        #expect(throws: Varint.DecodeError.overflow) {
            try Varint.decode([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02], at: &offset)
        }
    }

    @Test func basesRoundTrip() throws {
        let bytes: [UInt8] = [0, 0, 1, 2, 3, 250, 251, 252, 253, 254, 255]
        #expect(try Multibase.decodeBase58(Multibase.base58(bytes)) == bytes)
        #expect(try Multibase.decodeBase32(Multibase.base32(bytes)) == bytes)
        #expect(try Multibase.decode("k" + Multibase.base36(bytes)) == bytes)
        #expect(Multibase.base32(Array("foobar".utf8)) == "mzxw6ytboi")  // RFC 4648 vector, lower case
        #expect(Multibase.base58(Array("hello world".utf8)) == "StV1DL6CwTryKyV")
        #expect(throws: Multibase.DecodeError.self) { try Multibase.decode("x123") }
        #expect(throws: Multibase.DecodeError.self) { try Multibase.decodeBase58("0OIl") }
    }

    @Test(arguments: [
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
        "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354",
        "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e",
        "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam",
    ])
    func cidsRoundTrip(text: String) throws {
        let cid = try CID(text)
        #expect(cid.description == text)
        var offset = 0
        #expect(try CID(bytes: cid.bytes, offset: &offset) == cid)
    }

    @Test func peerIDAndNameAreTheSameKey() throws {
        // The reference's pair: 12D3KooW… (bare multihash, base58) ↔ k51… (libp2p-key CIDv1, base36).
        let name = try CID("k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam")
        #expect(name.codec == .libp2pKey)
        #expect(name.hashCode == .identity)
        #expect(Multibase.base58(name.multihash) == "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d")
    }

    @Test func badCIDsAreRefused() {
        #expect(throws: CID.ParseError.self) { try CID("bafy") }
        #expect(throws: CID.ParseError.self) { try CID("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ") }
        #expect(throws: CID.ParseError.self) { try CID("z" + Multibase.base58([2, 0x70, 0x12, 0x20] + [UInt8](repeating: 0, count: 32))) }
        #expect(throws: CID.ParseError.self) { try CID("b" + Multibase.base32([1, 0x70, 0x13, 0x20] + [UInt8](repeating: 0, count: 32))) }
    }
}
