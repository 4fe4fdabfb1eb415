/// The signed DAG-CBOR `data` map of an IPNS record. `Value`, `Validity`, `ValidityType`,
/// `Sequence` and `TTL` are required with their types; other keys are skipped (the spec's
/// extensible data); duplicate keys, non-text keys and bytes after the map are refused.
struct IPNSRecordData {
    /// `Value`: the path the name points to, as UTF-8.
    var value: String
    /// `Validity`: the RFC 3339 end of validity.
    var validity: [UInt8]
    /// `ValidityType`: 0 (EOL) is the only type defined.
    var validityType: UInt64
    /// `Sequence`: higher is newer.
    var sequence: UInt64
    /// `TTL`: how long the record may be cached, in nanoseconds.
    var ttl: UInt64

    /// Decodes the map.
    init(decoding bytes: [UInt8]) throws(IPNSRecord.Failure) {
        var reader = CBORReader(bytes: bytes)
        var value: [UInt8]?
        var validity: [UInt8]?
        var validityType: UInt64?
        var sequence: UInt64?
        var ttl: UInt64?
        var keys: Set<String> = []
        do throws(CBORReader.Failure) {
            guard case .map(let count) = try reader.next() else { throw .init(message: "data is not a map") }
            for _ in 0..<count {
                guard case .text(let key) = try reader.next() else { throw .init(message: "a map key is not text") }
                guard keys.insert(key).inserted else { throw .init(message: "key \(key.debugDescription) appears twice") }
                let item = try reader.next()
                switch (key, item) {
                case ("Value", .bytes(let bytes)): value = bytes
                case ("Validity", .bytes(let bytes)): validity = bytes
                case ("ValidityType", .unsigned(let number)): validityType = number
                case ("Sequence", .unsigned(let number)): sequence = number
                case ("TTL", .unsigned(let number)): ttl = number
                case ("Value", _), ("Validity", _), ("ValidityType", _), ("Sequence", _), ("TTL", _):
                    throw .init(message: "\(key) has the wrong type")
                default:
                    try reader.skip(item)
                }
            }
            guard reader.isAtEnd else { throw .init(message: "bytes after the map") }
        } catch {
            throw .malformedData(error.message)
        }
        guard let value, let validity, let validityType, let sequence, let ttl else {
            let missing = ["Value", "Validity", "ValidityType", "Sequence", "TTL"].filter { !keys.contains($0) }
            throw .malformedData("missing \(missing.joined(separator: ", "))")
        }
        guard let text = String(validating: value, as: UTF8.self) else { throw .malformedData("Value is not UTF-8") }
        self.value = text
        self.validity = validity
        self.validityType = validityType
        self.sequence = sequence
        self.ttl = ttl
    }
}
