import Crypto
import CryptoExtras
import Foundation
import Testing
@testable import IPFSData

/// A signing key for test records: the libp2p public-key protobuf and signatures as IPNS makes them.
enum TestKey: Sendable {
    case ed25519(Curve25519.Signing.PrivateKey)
    case rsa(_RSA.Signing.PrivateKey)

    /// One RSA-2048 key for the whole run (generating one takes a moment).
    static let sharedRSA = TestKey.rsa(try! _RSA.Signing.PrivateKey(keySize: .bits2048))

    /// A fresh Ed25519 key.
    static func makeEd25519() -> TestKey { .ed25519(Curve25519.Signing.PrivateKey()) }

    /// `PublicKey{1: KeyType, 2: Data}`.
    var protobuf: [UInt8] {
        var writer = ProtobufWriter()
        switch self {
        case .ed25519(let key):
            writer.varint(1, 1)
            writer.bytes(2, [UInt8](key.publicKey.rawRepresentation))
        case .rsa(let key):
            writer.varint(1, 0)
            writer.bytes(2, [UInt8](key.publicKey.derRepresentation))
        }
        return writer.bytes
    }

    var name: IPNSName { IPNSName(publicKey: try! IPNSPublicKey(protobuf: protobuf)) }

    func sign(_ message: [UInt8]) -> [UInt8] {
        switch self {
        case .ed25519(let key): [UInt8](try! key.signature(for: message))
        case .rsa(let key): [UInt8](try! key.signature(for: message, padding: .insecurePKCS1v1_5).rawRepresentation)
        }
    }
}

/// Canonical DAG-CBOR for test data (heads, strings, maps in the order given).
enum TestCBOR {
    static func head(_ major: UInt8, _ argument: UInt64) -> [UInt8] {
        switch argument {
        case 0..<24: [major << 5 | UInt8(argument)]
        case 24..<0x100: [major << 5 | 24, UInt8(argument)]
        case 0x100..<0x1_0000: [major << 5 | 25] + (0..<2).reversed().map { UInt8(truncatingIfNeeded: argument >> ($0 * 8)) }
        case 0x1_0000..<0x1_0000_0000: [major << 5 | 26] + (0..<4).reversed().map { UInt8(truncatingIfNeeded: argument >> ($0 * 8)) }
        default: [major << 5 | 27] + (0..<8).reversed().map { UInt8(truncatingIfNeeded: argument >> ($0 * 8)) }
        }
    }

    static func uint(_ value: UInt64) -> [UInt8] { head(0, value) }
    static func bytes(_ value: [UInt8]) -> [UInt8] { head(2, UInt64(value.count)) + value }
    static func text(_ value: String) -> [UInt8] { head(3, UInt64(value.utf8.count)) + Array(value.utf8) }

    static func map(_ entries: [(String, [UInt8])]) -> [UInt8] {
        head(5, UInt64(entries.count)) + entries.flatMap { text($0.0) + $0.1 }
    }

    /// The IPNS data map, keys in DAG-CBOR order, plus `extra` entries at the end.
    static func data(
        value: String, validity: String, validityType: UInt64 = 0, sequence: UInt64, ttl: UInt64,
        extra: [(String, [UInt8])] = []
    ) -> [UInt8] {
        map([
            ("TTL", uint(ttl)), ("Value", bytes(Array(value.utf8))), ("Sequence", uint(sequence)),
            ("Validity", bytes(Array(validity.utf8))), ("ValidityType", uint(validityType)),
        ] + extra)
    }
}

/// An `IpnsEntry` for tests; nil fields are left out.
struct TestEntry {
    var value: [UInt8]?
    var signatureV1: [UInt8]?
    var validityType: UInt64?
    var validity: [UInt8]?
    var sequence: UInt64?
    var ttl: UInt64?
    var pubKey: [UInt8]?
    var signatureV2: [UInt8]?
    var data: [UInt8]?

    static let value = "/ipfs/bafkreidfdrlkeq4m4xnxuyx6iae76fdm4wgl5d4xzsb77ixhyqwumhz244"
    static let validity = "2999-01-01T00:00:00.5Z"
    static let now: Int64 = 1_750_000_000

    /// A signed record: V1+V2 (kubo's default) or V2-only; RSA keys are embedded.
    static func signed(
        by key: TestKey, value: String = value, validity: String = validity, sequence: UInt64 = 3,
        ttl: UInt64 = 300_000_000_000, v1: Bool = true, extra: [(String, [UInt8])] = []
    ) -> TestEntry {
        var entry = TestEntry()
        entry.data = TestCBOR.data(value: value, validity: validity, sequence: sequence, ttl: ttl, extra: extra)
        entry.signatureV2 = key.sign(IPNSRecord.signaturePrefix + entry.data!)
        if case .rsa = key { entry.pubKey = key.protobuf }
        if v1 {
            entry.value = Array(value.utf8)
            entry.validity = Array(validity.utf8)
            entry.validityType = 0
            entry.sequence = sequence
            entry.ttl = ttl
            entry.signatureV1 = key.sign(Array(value.utf8) + Array(validity.utf8) + Array("EOL".utf8))
        }
        return entry
    }

    /// Replaces `data` and signs it again.
    mutating func resign(_ data: [UInt8], by key: TestKey) {
        self.data = data
        signatureV2 = key.sign(IPNSRecord.signaturePrefix + data)
    }

    var encoded: [UInt8] {
        var writer = ProtobufWriter()
        if let value { writer.bytes(1, value) }
        if let signatureV1 { writer.bytes(2, signatureV1) }
        if let validityType { writer.varint(3, validityType) }
        if let validity { writer.bytes(4, validity) }
        if let sequence { writer.varint(5, sequence) }
        if let ttl { writer.varint(6, ttl) }
        if let pubKey { writer.bytes(7, pubKey) }
        if let signatureV2 { writer.bytes(8, signatureV2) }
        if let data { writer.bytes(9, data) }
        return writer.bytes
    }
}

@Suite struct IPNSRecordTests {
    static let peerID = "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2d"
    static let base36 = "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36dam"

    func verify(_ entry: TestEntry, _ name: IPNSName, now: Int64 = TestEntry.now) throws(IPNSRecord.Failure) -> IPNSRecord {
        try IPNSRecord.verify(entry.encoded, for: name, now: now)
    }

    // MARK: Names

    @Test func referencePeerIDAndBase36NameAreTheSameName() throws {
        let fromPeerID = try IPNSName(Self.peerID)
        let fromBase36 = try IPNSName(Self.base36)
        #expect(fromPeerID == fromBase36)
        #expect(fromPeerID.description == Self.base36)
        #expect(Multibase.base58(fromBase36.multihash) == Self.peerID)
        #expect(Array(fromPeerID.multihash.prefix(6)) == [0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
        #expect(fromPeerID.publicKey?.type == .ed25519)
        #expect(fromPeerID.publicKey.map(IPNSName.init(publicKey:)) == fromPeerID)
        let base32 = "b" + Multibase.base32(fromPeerID.cid.bytes)
        #expect(base32.hasPrefix("bafz"))
        #expect(try IPNSName(base32) == fromPeerID)
        #expect(try IPNSName(Self.base36.uppercased()) == fromPeerID)
    }

    @Test func ed25519NamesRoundTripInEveryForm() throws {
        let name = TestKey.makeEd25519().name
        #expect(name.description.hasPrefix("k51qzi5uqu5"))
        let peerID = Multibase.base58(name.multihash)
        #expect(peerID.hasPrefix("12D3KooW"))
        for text in [name.description, peerID, "b" + Multibase.base32(name.cid.bytes), "z" + Multibase.base58(name.cid.bytes)] {
            #expect(try IPNSName(text) == name, "\(text)")
        }
    }

    @Test func rsaNamesRoundTripInEveryForm() throws {
        let name = TestKey.sharedRSA.name
        #expect(name.description.hasPrefix("k2k4r8"))
        #expect(name.cid.hashCode == .sha2_256)
        #expect(name.publicKey == nil)
        let peerID = Multibase.base58(name.multihash)
        #expect(peerID.hasPrefix("Qm"))
        #expect(try IPNSName(peerID) == name)
        #expect(try IPNSName(name.description) == name)
        #expect(try IPNSName("b" + Multibase.base32(name.cid.bytes)) == name)
    }

    @Test(arguments: [
        "", "k", "k51qzi5uqu5dk3v4rmjber23h16xnr23bsggmqqil9z2gduiis5se8dht36da!",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",  // dag-pb, not libp2p-key
        "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQ",  // truncated
        "12D3KooWLQzUv2FHWGVPXTXSZpdHs7oHbXub2G5WC8Tx4NQhyd2",  // truncated identity key
        "x123",
    ])
    func malformedNamesAreRefused(text: String) {
        #expect(throws: IPNSName.ParseError.self) { try IPNSName(text) }
    }

    @Test func identityNamesMustHoldAnEd25519Key() throws {
        let notAKey = CID(version: 1, codec: .libp2pKey, hashCode: .identity, digest: [0x08, 0x01, 0x12, 0x01, 0x00])
        #expect(throws: IPNSName.ParseError.self) { try IPNSName(notAKey.description) }
        let secp256k1 = CID(version: 1, codec: .libp2pKey, hashCode: .identity, digest: [0x08, 0x02, 0x12, 0x21] + [UInt8](repeating: 2, count: 33))
        #expect(throws: IPNSName.ParseError.self) { try IPNSName(secp256k1.description) }
        let trailing = Multibase.base58(try IPNSName(Self.peerID).multihash + [0])
        #expect(throws: IPNSName.ParseError.self) { try IPNSName(trailing) }
    }

    // MARK: RFC 3339

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0, 0),
        ("1970-01-01T00:00:00.000000001Z", 0, 1),
        ("1969-12-31T23:59:59Z", -1, 0),
        ("2123-08-14T12:17:03.694052Z", 4_847_689_023, 694_052_000),
        ("2123-08-14t12:17:03.6940520009999z", 4_847_689_023, 694_052_000),
        ("2000-02-29T23:59:59+01:00", 951_868_799 - 3600, 0),
        ("2000-02-29T23:59:59.5-02:30", 951_868_799 + 9000, 500_000_000),
        ("9999-12-31T23:59:59Z", 253_402_300_799, 0),
        ("1600-03-01T00:00:00Z", -11_670_912_000, 0),
    ] as [(String, Int64, Int64)])
    func rfc3339Parses(text: String, seconds: Int64, nanoseconds: Int64) {
        #expect(RFC3339.parse(text) == RFC3339.Time(seconds: seconds, nanoseconds: nanoseconds))
    }

    @Test(arguments: [
        "", "2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-00-10T00:00:00Z", "2023-04-31T00:00:00Z",
        "2023-01-01T24:00:00Z", "2023-01-01T00:60:00Z", "2023-01-01T00:00:60Z", "2023-01-01T00:00:00",
        "2023-01-01 00:00:00Z", "2023-01-01T00:00:00.Z", "2023-01-01T00:00:00Zx", "2023-01-01T00:00:00+0100",
        "2023-01-01T00:00:00+24:00", "23-01-01T00:00:00Z", "2023-1-01T00:00:00Z", "2023-01-01T00:00:00 Z",
        "+023-01-01T00:00:00Z",
    ])
    func rfc3339Refuses(text: String) {
        #expect(RFC3339.parse(text) == nil)
    }

    // MARK: Verification: valid records

    @Test func ed25519RecordsVerify() throws {
        let key = TestKey.makeEd25519()
        for v1 in [true, false] {
            let record = try verify(.signed(by: key, value: "/ipfs/bafy/sub/path", sequence: 9, ttl: 1_500_000_000, v1: v1), key.name)
            #expect(record == IPNSRecord(
                value: "/ipfs/bafy/sub/path", sequence: 9, ttlNanoseconds: 1_500_000_000,
                validity: TestEntry.validity, validUntil: 32_472_144_000))
        }
    }

    @Test func rsaRecordsVerify() throws {
        let key = TestKey.sharedRSA
        for v1 in [true, false] {
            let record = try verify(.signed(by: key, value: "/ipns/example.org", v1: v1), key.name)
            #expect(record.value == "/ipns/example.org")
            #expect(record.sequence == 3)
        }
    }

    @Test func ed25519RecordsMayEmbedTheirKey() throws {
        let key = TestKey.makeEd25519()
        var entry = TestEntry.signed(by: key)
        entry.pubKey = key.protobuf
        #expect(try verify(entry, key.name).value == TestEntry.value)
    }

    @Test func extraDataKeysAreSkipped() throws {
        let key = TestKey.makeEd25519()
        let nested = TestCBOR.head(5, 1) + TestCBOR.text("a") + TestCBOR.head(4, 4) + TestCBOR.head(1, 5)
            + [0xF6, 0xFB] + [UInt8](repeating: 0, count: 8) + TestCBOR.head(6, 42) + TestCBOR.bytes([0, 1])
        let entry = TestEntry.signed(by: key, v1: false, extra: [("_ext", nested), ("~", TestCBOR.uint(1))])
        #expect(try verify(entry, key.name).value == TestEntry.value)
    }

    @Test func validityIsComparedToTheSecond() throws {
        let key = TestKey.makeEd25519()
        let whole = TestEntry.signed(by: key, validity: "2025-06-15T12:00:00Z")
        let end = RFC3339.parse("2025-06-15T12:00:00Z")!.seconds
        #expect(try verify(whole, key.name, now: end - 1).validUntil == end)
        #expect(throws: IPNSRecord.Failure.expired("2025-06-15T12:00:00Z")) { try verify(whole, key.name, now: end) }
        let fraction = TestEntry.signed(by: key, validity: "2025-06-15T12:00:00.1Z")
        #expect(try verify(fraction, key.name, now: end).validUntil == end)
        #expect(throws: IPNSRecord.Failure.self) { try verify(fraction, key.name, now: end + 1) }
    }

    // MARK: Verification: each step's failure

    @Test func step1RecordsOverTenKiBAreRefused() throws {
        let key = TestKey.makeEd25519()
        let padding = [UInt8](repeating: 0, count: 10 * 1024)
        let entry = TestEntry.signed(by: key, extra: [("_pad", TestCBOR.bytes(padding))])
        #expect(throws: IPNSRecord.Failure.tooLarge(entry.encoded.count)) { try verify(entry, key.name) }
        #expect(throws: IPNSRecord.Failure.tooLarge(10 * 1024 + 1)) {
            try IPNSRecord.verify([UInt8](repeating: 0xFF, count: 10 * 1024 + 1), for: key.name, now: 0)
        }
    }

    @Test func step2SignatureV2AndDataAreRequired() {
        let key = TestKey.makeEd25519()
        var entry = TestEntry.signed(by: key)
        entry.signatureV2 = nil
        #expect(throws: IPNSRecord.Failure.missingSignatureV2) { try verify(entry, key.name) }
        entry.signatureV2 = []
        #expect(throws: IPNSRecord.Failure.missingSignatureV2) { try verify(entry, key.name) }
        entry = TestEntry.signed(by: key)
        entry.data = []
        #expect(throws: IPNSRecord.Failure.missingData) { try verify(entry, key.name) }
        entry.data = nil
        #expect(throws: IPNSRecord.Failure.missingData) { try verify(entry, key.name) }
    }

    @Test func step3ThePublicKeyMustBeTheNames() throws {
        let rsa = TestKey.sharedRSA
        var entry = TestEntry.signed(by: rsa)
        entry.pubKey = nil
        #expect(throws: IPNSRecord.Failure.missingPublicKey(name: rsa.name.description)) { try verify(entry, rsa.name) }

        let other = TestKey.makeEd25519()
        entry = TestEntry.signed(by: other)
        entry.pubKey = other.protobuf
        let name = TestKey.makeEd25519().name
        #expect(throws: IPNSRecord.Failure.wrongPublicKey(name: name.description)) { try verify(entry, name) }
        #expect(throws: IPNSRecord.Failure.wrongPublicKey(name: rsa.name.description)) { try verify(entry, rsa.name) }

        entry.pubKey = [0x08, 0x01, 0x12, 0x03, 1, 2, 3]
        #expect(throws: IPNSRecord.Failure.malformedPublicKey("Ed25519 key of 3 bytes")) { try verify(entry, name) }
        entry.pubKey = [0x08, 0x02, 0x12, 0x01, 0x00]
        #expect(throws: IPNSRecord.Failure.unsupportedKeyType(2)) { try verify(entry, name) }
        entry.pubKey = [0x08, 0x00, 0x12, 0x03, 1, 2, 3]
        #expect(throws: IPNSRecord.Failure.self) { try verify(entry, name) }
        for malformed: [UInt8] in [[0x08], [0x08, 0x01], [0x12, 0x00], [0x08, 0x01, 0x08, 0x01, 0x12, 0x00], [0x1A, 0x00]] {
            entry.pubKey = malformed
            #expect(throws: IPNSRecord.Failure.self) { try verify(entry, name) }
        }
    }

    @Test func step3RSAKeysMustBeAtLeast2048Bits() throws {
        let small = TestKey.rsa(try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024)))
        #expect(throws: IPNSRecord.Failure.malformedPublicKey("not a DER RSA key of at least 2048 bits")) {
            try IPNSPublicKey(protobuf: small.protobuf)
        }
    }

    @Test func step4DataMustBeTheIPNSMap() {
        let key = TestKey.makeEd25519()
        let good = TestCBOR.data(value: TestEntry.value, validity: TestEntry.validity, sequence: 1, ttl: 1)
        let cases: [([UInt8], String)] = [
            (TestCBOR.head(4, 0), "data is not a map"),
            (TestCBOR.head(5, 1) + TestCBOR.uint(1) + TestCBOR.uint(1), "a map key is not text"),
            (good + [0x00], "bytes after the map"),
            (Array(good.dropLast()), "CBOR ends early"),
            ([0xBF] + Array(good.dropFirst()), "indefinite CBOR lengths are not DAG-CBOR"),
            (TestCBOR.map([("TTL", TestCBOR.uint(1)), ("TTL", TestCBOR.uint(1))]), "key \"TTL\" appears twice"),
            (TestCBOR.map([("TTL", TestCBOR.text("1"))]), "TTL has the wrong type"),
            (TestCBOR.map([("Value", TestCBOR.text("/ipfs/x"))]), "Value has the wrong type"),
            (TestCBOR.map([("Sequence", TestCBOR.head(1, 0))]), "Sequence has the wrong type"),
            (TestCBOR.map([("TTL", TestCBOR.uint(1))]), "missing Value, Validity, ValidityType, Sequence"),
            (TestCBOR.map([("TTL", TestCBOR.uint(1)), ("Value", TestCBOR.bytes([0xFF])), ("Sequence", TestCBOR.uint(1)),
                           ("Validity", TestCBOR.bytes([])), ("ValidityType", TestCBOR.uint(0))]), "Value is not UTF-8"),
            (TestCBOR.head(5, 1000), "CBOR map longer than its input"),
            (TestCBOR.map([("_", [UInt8](repeating: 0x81, count: 100) + [0x00])]), "CBOR nested too deeply"),
            (TestCBOR.map([("_", [0xF7])]), "CBOR simple value 23 is not DAG-CBOR"),
            (TestCBOR.map([("_", [0x63, 0xFF, 0xFE, 0xFD])]), "CBOR text is not UTF-8"),
        ]
        for (data, message) in cases {
            var entry = TestEntry.signed(by: key, v1: false)
            entry.resign(data, by: key)
            #expect(throws: IPNSRecord.Failure.malformedData(message)) { try verify(entry, key.name) }
        }
    }

    @Test func step5SignatureV2MustVerify() {
        let key = TestKey.makeEd25519()
        var entry = TestEntry.signed(by: key)
        entry.signatureV2![0] ^= 1
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(entry, key.name) }
        entry = TestEntry.signed(by: key)
        entry.data = TestCBOR.data(value: "/ipfs/other", validity: TestEntry.validity, sequence: 3, ttl: 300_000_000_000)
        entry.value = Array("/ipfs/other".utf8)
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(entry, key.name) }
        entry = TestEntry.signed(by: key)
        entry.signatureV2 = entry.signatureV1  // signatureV1 is never used
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(entry, key.name) }
        let rsa = TestKey.sharedRSA
        entry = TestEntry.signed(by: rsa)
        entry.signatureV2![5] ^= 0x80
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(entry, rsa.name) }
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(TestEntry.signed(by: key), TestKey.makeEd25519().name) }
    }

    @Test func step6V1FieldsMustEqualTheSignedOnes() throws {
        let key = TestKey.makeEd25519()
        let edits: [(String, (inout TestEntry) -> Void)] = [
            ("value", { $0.value = Array("/ipfs/other".utf8) }),
            ("value", { $0.value = nil }),
            ("validity", { $0.validity = Array("2999-01-01T00:00:00Z".utf8) }),
            ("validityType", { $0.validityType = 1 }),
            ("sequence", { $0.sequence = 4 }),
            ("sequence", { $0.sequence = nil }),
            ("ttl", { $0.ttl = 1 }),
        ]
        for (field, edit) in edits {
            var entry = TestEntry.signed(by: key)
            edit(&entry)
            #expect(throws: IPNSRecord.Failure.v1Mismatch(field: field)) { try verify(entry, key.name) }
        }
        var entry = TestEntry.signed(by: key)
        entry.signatureV1 = Array("invalid stuff".utf8)
        #expect(try verify(entry, key.name).value == TestEntry.value)
        entry.validityType = nil  // absent counts as 0 (EOL)
        #expect(try verify(entry, key.name).value == TestEntry.value)
        var v2Only = TestEntry.signed(by: key, v1: false)
        v2Only.ttl = 300_000_000_000
        #expect(throws: IPNSRecord.Failure.v1Mismatch(field: "value")) { try verify(v2Only, key.name) }
    }

    @Test func step7ValidityMustBeAnEOLInTheFuture() {
        let key = TestKey.makeEd25519()
        #expect(throws: IPNSRecord.Failure.expired("2020-01-01T00:00:00Z")) {
            try verify(.signed(by: key, validity: "2020-01-01T00:00:00Z"), key.name)
        }
        #expect(throws: IPNSRecord.Failure.malformedValidity("next\nyear")) {
            try verify(.signed(by: key, validity: "next\nyear"), key.name)
        }
        var entry = TestEntry.signed(by: key, v1: false)
        entry.resign(TestCBOR.data(value: "/ipfs/x", validity: TestEntry.validity, validityType: 1, sequence: 1, ttl: 1), by: key)
        #expect(throws: IPNSRecord.Failure.unsupportedValidityType(1)) { try verify(entry, key.name) }
    }

    @Test func stepsRunInTheSpecsOrder() {
        let key = TestKey.makeEd25519()
        // An expired record whose V1 copy disagrees: step 6 before step 7.
        var entry = TestEntry.signed(by: key, validity: "2020-01-01T00:00:00Z")
        entry.sequence = 99
        #expect(throws: IPNSRecord.Failure.v1Mismatch(field: "sequence")) { try verify(entry, key.name) }
        // A bad signature and a V1 mismatch: step 5 before step 6.
        entry.signatureV2![0] ^= 1
        #expect(throws: IPNSRecord.Failure.badSignature) { try verify(entry, key.name) }
        // Undecodable data under a bad signature: step 4 before step 5.
        entry.data = [0x18]
        #expect(throws: IPNSRecord.Failure.malformedData("CBOR ends early")) { try verify(entry, key.name) }
        // No key for an RSA name, with undecodable data: step 3 before step 4.
        let rsa = TestKey.sharedRSA
        #expect(throws: IPNSRecord.Failure.missingPublicKey(name: rsa.name.description)) { try verify(entry, rsa.name) }
        // Missing data with a malformed key: step 2 before step 3.
        entry.pubKey = [0x00]
        entry.data = nil
        #expect(throws: IPNSRecord.Failure.missingData) { try verify(entry, key.name) }
    }

    // MARK: Strict protobuf

    @Test func malformedEntriesAreRefused() {
        let key = TestKey.makeEd25519()
        let good = TestEntry.signed(by: key).encoded
        var duplicate = ProtobufWriter()
        duplicate.varint(5, 1)
        duplicate.varint(5, 1)
        var wrongType = ProtobufWriter()
        wrongType.varint(9, 1)
        let cases: [[UInt8]] = [
            Array(good.dropLast()),
            good + [0x4A],  // field 9 key, no length
            duplicate.bytes,
            wrongType.bytes,
            [0x09] + [UInt8](repeating: 0, count: 8),  // field 1, wire type 1 (fixed64)
            [0x00, 0x00],  // field 0
            [0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F],  // length past the end
        ]
        for bytes in cases {
            let error = #expect(throws: IPNSRecord.Failure.self) { try IPNSRecord.verify(bytes, for: key.name, now: 0) }
            guard case .malformedRecord? = error else {
                Issue.record("\(bytes) gave \(String(describing: error))")
                continue
            }
        }
    }

    @Test func unknownLaterFieldsAreSkipped() throws {
        let key = TestKey.makeEd25519()
        var writer = ProtobufWriter()
        writer.varint(10, 7)
        writer.bytes(11, [1, 2, 3])
        #expect(try IPNSRecord.verify(TestEntry.signed(by: key).encoded + writer.bytes, for: key.name, now: 0).sequence == 3)
    }

    @Test func failuresDescribeThemselvesOnOneLine() {
        let failures: [IPNSRecord.Failure] = [
            .tooLarge(20000), .malformedRecord("x"), .missingSignatureV2, .missingData, .missingPublicKey(name: "k2k4r8"),
            .malformedPublicKey("x"), .unsupportedKeyType(2), .wrongPublicKey(name: "k51"), .malformedData("x"),
            .badSignature, .v1Mismatch(field: "ttl"), .unsupportedValidityType(1), .malformedValidity("a\nb"), .expired("2020"),
        ]
        for failure in failures {
            #expect(!failure.description.contains("\n"))
            #expect(failure.description.contains("IPNS") || failure.description.contains("public key"))
        }
        #expect(IPNSRecord.Failure.tooLarge(20000).description == "IPNS record of 20000 bytes is over the 10 KiB limit")
    }
}
