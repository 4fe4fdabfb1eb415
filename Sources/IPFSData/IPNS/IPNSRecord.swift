/// A verified IPNS record: the path a name points to, its sequence number, TTL and end of validity.
public struct IPNSRecord: Equatable, Sendable {
    /// Records over this many bytes are refused (the spec's limit).
    public static let maximumSize = 10 * 1024
    /// What signatureV2 signs, followed by the raw `data` bytes.
    static let signaturePrefix = Array("ipns-signature:".utf8)

    /// The signed `Value`: `/ipfs/<cid>[/path]` or `/ipns/<name>`.
    public let value: String
    /// The signed `Sequence`: among valid records of a name, the highest wins.
    public let sequence: UInt64
    /// The signed `TTL`: how long the record may be cached, in nanoseconds.
    public let ttlNanoseconds: UInt64
    /// The signed `Validity` as written, e.g. `2123-08-14T12:17:03.694052Z`.
    public let validity: String
    /// `Validity` in Unix seconds (rounded down).
    public let validUntil: Int64

    /// Verifies a serialized record for `name` at `now` (Unix seconds) following the spec's steps
    /// in order, failing on the first error; signatureV1 is never used.
    public static func verify(_ bytes: [UInt8], for name: IPNSName, now: Int64) throws(Failure) -> IPNSRecord {
        // 1. Size, before parsing.
        guard bytes.count <= maximumSize else { throw .tooLarge(bytes.count) }
        let entry = try IPNSEntry(decoding: bytes)
        // 2. signatureV2 and data present and non-empty.
        guard let signature = entry.signatureV2, !signature.isEmpty else { throw .missingSignatureV2 }
        guard let data = entry.data, !data.isEmpty else { throw .missingData }
        // 3. The public key: from pubKey, which must be the name's key, else inlined in the name.
        let key: IPNSPublicKey
        if let pubKey = entry.pubKey, !pubKey.isEmpty {
            key = try IPNSPublicKey(protobuf: pubKey)
            guard key.multihash == name.multihash else { throw .wrongPublicKey(name: name.description) }
        } else {
            guard let inlined = name.publicKey else { throw .missingPublicKey(name: name.description) }
            key = inlined
        }
        // 4. data as DAG-CBOR.
        let fields = try IPNSRecordData(decoding: data)
        // 5. signatureV2 over the prefix and data.
        guard key.isValidSignature(signature, for: signaturePrefix + data) else { throw .badSignature }
        // 6. V1 fields, when there are any, must all equal the signed ones (absent counts as empty or 0).
        if entry.hasV1Fields {
            guard (entry.value ?? []) == Array(fields.value.utf8) else { throw .v1Mismatch(field: "value") }
            guard (entry.validity ?? []) == fields.validity else { throw .v1Mismatch(field: "validity") }
            guard (entry.validityType ?? 0) == fields.validityType else { throw .v1Mismatch(field: "validityType") }
            guard (entry.sequence ?? 0) == fields.sequence else { throw .v1Mismatch(field: "sequence") }
            guard (entry.ttl ?? 0) == fields.ttl else { throw .v1Mismatch(field: "ttl") }
        }
        // 7. Validity (EOL) later than now.
        guard fields.validityType == 0 else { throw .unsupportedValidityType(fields.validityType) }
        let validity = String(decoding: fields.validity, as: UTF8.self)
        guard let end = RFC3339.parse(validity) else { throw .malformedValidity(validity) }
        guard end.seconds > now || (end.seconds == now && end.nanoseconds > 0) else { throw .expired(validity) }
        return IPNSRecord(
            value: fields.value, sequence: fields.sequence, ttlNanoseconds: fields.ttl,
            validity: validity, validUntil: end.seconds)
    }
}
