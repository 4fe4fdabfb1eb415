import Crypto
import CryptoExtras

/// A libp2p public key as IPNS names and records carry it: the protobuf `{1: KeyType, 2: Data}`.
public struct IPNSPublicKey: Hashable, Sendable {
    /// The libp2p key types IPNS verification supports (Secp256k1 and ECDSA are refused).
    public enum KeyType: UInt64, Sendable {
        case rsa = 0
        case ed25519 = 1
    }

    /// Serialized keys up to this size are named by their identity multihash (libp2p peer IDs).
    static let maximumInlineLength = 42
    /// The largest RSA key libp2p accepts.
    static let maximumRSABits = 8192

    /// The key type.
    public let type: KeyType
    /// The raw 32-byte Ed25519 key, or RSA's DER SubjectPublicKeyInfo.
    public let data: [UInt8]
    /// The serialized protobuf, whose multihash is the name.
    public let protobuf: [UInt8]

    /// Decodes a serialized key strictly (both fields once, nothing else) and checks the key itself.
    public init(protobuf: [UInt8]) throws(IPNSRecord.Failure) {
        var type: UInt64?
        var data: [UInt8]?
        try decodingStrictly(IPNSRecord.Failure.malformedPublicKey) {
            var reader = ProtobufReader(protobuf[...])
            while !reader.isAtEnd {
                switch try reader.next() {
                case .varint(1, let value) where type == nil: type = value
                case .bytes(2, let value) where data == nil: data = Array(value)
                case .varint(let number, _), .bytes(let number, _):
                    throw IPNSRecord.Failure.malformedPublicKey("unexpected or repeated field \(number)")
                }
            }
        }
        guard let type, let data else { throw .malformedPublicKey("key type or data missing") }
        guard let keyType = KeyType(rawValue: type) else { throw .unsupportedKeyType(type) }
        switch keyType {
        case .ed25519:
            guard data.count == 32 else { throw .malformedPublicKey("Ed25519 key of \(data.count) bytes") }
        case .rsa:
            let key: _RSA.Signing.PublicKey
            do {
                key = try _RSA.Signing.PublicKey(derRepresentation: data)
            } catch {
                throw .malformedPublicKey("not a DER RSA key of at least 2048 bits")
            }
            guard key.keySizeInBits <= Self.maximumRSABits else {
                throw .malformedPublicKey("RSA key of \(key.keySizeInBits) bits")
            }
        }
        self.type = keyType
        self.data = data
        self.protobuf = protobuf
    }

    /// The libp2p-key CIDv1 naming this key: identity multihash when the protobuf is at most
    /// 42 bytes, else sha2-256 (libp2p's peer-ID rule).
    var cid: CID {
        protobuf.count <= Self.maximumInlineLength
            ? CID(version: 1, codec: .libp2pKey, hashCode: .identity, digest: protobuf)
            : CID.hashing(protobuf, codec: .libp2pKey, version: 1)
    }

    /// The multihash naming this key.
    public var multihash: [UInt8] { cid.multihash }

    /// Whether `signature` signs `message`: Ed25519 (RFC 8032) or RSA PKCS#1 v1.5 with SHA-256.
    func isValidSignature(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch type {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: data) else { return false }
            return key.isValidSignature(signature, for: message)
        case .rsa:
            guard let key = try? _RSA.Signing.PublicKey(derRepresentation: data) else { return false }
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: message, padding: .insecurePKCS1v1_5)
        }
    }
}
