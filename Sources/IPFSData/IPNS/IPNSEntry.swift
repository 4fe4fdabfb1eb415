/// The `IpnsEntry` protobuf of an IPNS record, decoded strictly: fields 1…9 with their declared
/// wire types, each at most once; unknown later fields are skipped as protobuf requires.
struct IPNSEntry {
    /// Legacy V1 copy of `data[Value]`.
    var value: [UInt8]?
    /// Legacy V1 signature: decoded, never used.
    var signatureV1: [UInt8]?
    /// Legacy V1 copy of `data[ValidityType]`.
    var validityType: UInt64?
    /// Legacy V1 copy of `data[Validity]`.
    var validity: [UInt8]?
    /// Legacy V1 copy of `data[Sequence]`.
    var sequence: UInt64?
    /// Legacy V1 copy of `data[TTL]`.
    var ttl: UInt64?
    /// The serialized libp2p public key, for keys the name cannot inline (RSA).
    var pubKey: [UInt8]?
    /// The signature over `ipns-signature:` and `data`.
    var signatureV2: [UInt8]?
    /// The signed DAG-CBOR map.
    var data: [UInt8]?

    /// Decodes the protobuf.
    init(decoding bytes: [UInt8]) throws(IPNSRecord.Failure) {
        var entry = IPNSEntry()
        try decodingStrictly(IPNSRecord.Failure.malformedRecord) {
            var reader = ProtobufReader(bytes[...])
            while !reader.isAtEnd {
                let field = try reader.next()
                switch field {
                case .bytes(1, let value): try Self.set(&entry.value, Array(value), field: 1)
                case .bytes(2, let value): try Self.set(&entry.signatureV1, Array(value), field: 2)
                case .varint(3, let value): try Self.set(&entry.validityType, value, field: 3)
                case .bytes(4, let value): try Self.set(&entry.validity, Array(value), field: 4)
                case .varint(5, let value): try Self.set(&entry.sequence, value, field: 5)
                case .varint(6, let value): try Self.set(&entry.ttl, value, field: 6)
                case .bytes(7, let value): try Self.set(&entry.pubKey, Array(value), field: 7)
                case .bytes(8, let value): try Self.set(&entry.signatureV2, Array(value), field: 8)
                case .bytes(9, let value): try Self.set(&entry.data, Array(value), field: 9)
                case .varint(let number, _) where number <= 9, .bytes(let number, _) where number <= 9:
                    throw IPNSRecord.Failure.malformedRecord("field \(number) has the wrong wire type")
                case .varint, .bytes:
                    break
                }
            }
        }
        self = entry
    }

    private init() {}

    /// Whether any legacy V1 field (1…6) is present.
    var hasV1Fields: Bool {
        value != nil || signatureV1 != nil || validityType != nil || validity != nil || sequence != nil || ttl != nil
    }

    private static func set<Value>(_ slot: inout Value?, _ value: Value, field: Int) throws(IPNSRecord.Failure) {
        guard slot == nil else { throw .malformedRecord("field \(field) appears twice") }
        slot = value
    }
}
