/// An IPNS name: the multihash of a libp2p public key, written as a libp2p-key CIDv1 (`k51…`,
/// `k2k4r8…`, `bafz…`) or as a base58btc peer ID (`12D3KooW…`, legacy RSA `Qm…`).
public struct IPNSName: Hashable, Sendable, CustomStringConvertible {
    /// Why text is not an IPNS name.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)

        public var description: String {
            switch self {
            case .malformed(let detail): "not an IPNS name: \(detail)"
            }
        }
    }

    /// The name as a CIDv1 with the libp2p-key codec.
    public let cid: CID
    /// The key itself when the name inlines it (identity multihash, as for Ed25519).
    public let publicKey: IPNSPublicKey?

    /// Parses any of the text forms.
    public init(_ text: String) throws(ParseError) {
        let hashCode: CID.HashCode
        let digest: [UInt8]
        if text.hasPrefix("Qm") || text.hasPrefix("1") {
            do {
                let bytes = try Multibase.decodeBase58(text)
                var offset = 0
                (hashCode, digest) = try CID.readMultihash(bytes, offset: &offset)
                guard offset == bytes.count else { throw ParseError.malformed("trailing bytes after the multihash") }
            } catch let error as ParseError {
                throw error
            } catch {
                throw .malformed("\(error)")
            }
        } else {
            let cid: CID
            do {
                cid = try CID(text)
            } catch {
                throw .malformed(error.description)
            }
            guard cid.version == 1, cid.codec == .libp2pKey else {
                throw .malformed("\(text) is not a libp2p-key CIDv1")
            }
            (hashCode, digest) = (cid.hashCode, cid.digest)
        }
        let cid = CID(version: 1, codec: .libp2pKey, hashCode: hashCode, digest: digest)
        guard hashCode == .identity else {
            self.init(cid: cid, publicKey: nil)
            return
        }
        do {
            self.init(cid: cid, publicKey: try IPNSPublicKey(protobuf: digest))
        } catch {
            throw .malformed("the inlined key: \(error)")
        }
    }

    /// The name of `publicKey`.
    public init(publicKey: IPNSPublicKey) {
        let cid = publicKey.cid
        self.init(cid: cid, publicKey: cid.hashCode == .identity ? publicKey : nil)
    }

    private init(cid: CID, publicKey: IPNSPublicKey?) {
        self.cid = cid
        self.publicKey = publicKey
    }

    /// The multihash of the public key.
    public var multihash: [UInt8] { cid.multihash }

    /// The canonical text form: the CIDv1 in base36 (`k51…` for Ed25519).
    public var description: String { cid.description }
}
