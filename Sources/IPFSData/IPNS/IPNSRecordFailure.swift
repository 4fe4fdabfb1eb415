extension IPNSRecord {
    /// Why a record is not a valid record of the name, named after the verification step that failed.
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case tooLarge(Int)
        case malformedRecord(String)
        case missingSignatureV2
        case missingData
        case missingPublicKey(name: String)
        case malformedPublicKey(String)
        case unsupportedKeyType(UInt64)
        case wrongPublicKey(name: String)
        case malformedData(String)
        case badSignature
        case v1Mismatch(field: String)
        case unsupportedValidityType(UInt64)
        case malformedValidity(String)
        case expired(String)

        public var description: String {
            switch self {
            case .tooLarge(let count): "IPNS record of \(count) bytes is over the 10 KiB limit"
            case .malformedRecord(let detail): "malformed IPNS record: \(detail)"
            case .missingSignatureV2: "IPNS record has no signatureV2"
            case .missingData: "IPNS record has no data"
            case .missingPublicKey(let name): "IPNS record has no public key and the name \(name) does not inline one"
            case .malformedPublicKey(let detail): "malformed public key in IPNS record: \(detail)"
            case .unsupportedKeyType(let type): "unsupported public key type \(type) in IPNS record"
            case .wrongPublicKey(let name): "IPNS record's public key is not the key of \(name)"
            case .malformedData(let detail): "malformed IPNS record data: \(detail)"
            case .badSignature: "IPNS record's signatureV2 does not verify"
            case .v1Mismatch(let field): "IPNS record's V1 field \(field) differs from the signed data"
            case .unsupportedValidityType(let type): "unsupported IPNS validity type \(type)"
            case .malformedValidity(let text): "IPNS record validity \(text.debugDescription) is not an RFC 3339 time"
            case .expired(let validity): "IPNS record expired at \(validity)"
            }
        }
    }
}
