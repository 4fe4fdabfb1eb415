import Crypto

/// A content identifier: version, content codec and multihash (sha2-256 or identity).
public struct CID: Hashable, Sendable, CustomStringConvertible {
    /// Content codecs ipfs-xfer reads and writes.
    public enum Codec: UInt64, Sendable {
        case raw = 0x55
        case dagPB = 0x70
        case dagCBOR = 0x71
        case libp2pKey = 0x72
    }

    /// Multihash function codes.
    public enum HashCode: UInt64, Sendable {
        case identity = 0x00
        case sha2_256 = 0x12
    }

    /// Why bytes or text are not a CID ipfs-xfer supports.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case unsupportedVersion(UInt64)
        case unsupportedCodec(UInt64)
        case unsupportedHash(UInt64)

        public var description: String {
            switch self {
            case .malformed(let detail): "malformed CID: \(detail)"
            case .unsupportedVersion(let version): "unsupported CID version \(version)"
            case .unsupportedCodec(let codec): "unsupported codec 0x\(String(codec, radix: 16))"
            case .unsupportedHash(let code): "unsupported multihash 0x\(String(code, radix: 16))"
            }
        }
    }

    /// Identity digests longer than this are refused (UnixFS spec).
    public static let maximumIdentityLength = 128

    public let version: Int
    public let codec: Codec
    public let hashCode: HashCode
    public let digest: [UInt8]

    /// A CID from its parts; version 0 is dag-pb with sha2-256 only.
    public init(version: Int, codec: Codec, hashCode: HashCode, digest: [UInt8]) {
        precondition(version == 1 || (codec == .dagPB && hashCode == .sha2_256), "CIDv0 is dag-pb sha2-256")
        self.version = version
        self.codec = codec
        self.hashCode = hashCode
        self.digest = digest
    }

    /// The CID of `block` under `codec`, hashed with sha2-256.
    public static func hashing(_ block: [UInt8], codec: Codec, version: Int) -> CID {
        CID(version: version, codec: codec, hashCode: .sha2_256, digest: Array(SHA256.hash(data: block)))
    }

    /// The CID of a block held in a buffer.
    public static func hashing(buffer block: UnsafeRawBufferPointer, codec: Codec, version: Int) -> CID {
        CID(version: version, codec: codec, hashCode: .sha2_256, digest: Array(SHA256.hash(data: block)))
    }

    /// The multihash bytes: code, length, digest.
    public var multihash: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digest.count + 2)
        appendMultihash(to: &bytes)
        return bytes
    }

    /// The binary form (CIDv0: the bare multihash).
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(byteCount)
        append(to: &bytes)
        return bytes
    }

    /// The length of the binary form.
    public var byteCount: Int {
        let multihash = Varint.length(hashCode.rawValue) + Varint.length(UInt64(digest.count)) + digest.count
        return version == 0 ? multihash : Varint.length(1) + Varint.length(codec.rawValue) + multihash
    }

    /// Appends the binary form to `bytes` (as encoders do, without an array of its own).
    public func append(to bytes: inout [UInt8]) {
        if version != 0 {
            Varint.append(1, to: &bytes)
            Varint.append(codec.rawValue, to: &bytes)
        }
        appendMultihash(to: &bytes)
    }

    private func appendMultihash(to bytes: inout [UInt8]) {
        Varint.append(hashCode.rawValue, to: &bytes)
        Varint.append(UInt64(digest.count), to: &bytes)
        bytes.append(contentsOf: digest)
    }

    /// The usual text form: base58btc for v0, base36 for libp2p keys, base32 otherwise.
    public var description: String {
        if version == 0 { return Multibase.base58(bytes) }
        if codec == .libp2pKey { return "k" + Multibase.base36(bytes) }
        return "b" + Multibase.base32(bytes)
    }

    /// Checks that `block` hashes to this CID.
    public func matches(_ block: UnsafeRawBufferPointer) -> Bool {
        switch hashCode {
        case .sha2_256: Array(SHA256.hash(data: block)) == digest
        case .identity: Array(block) == digest
        }
    }

    /// Parses the text form (CIDv0 `Qm…` or any supported multibase CIDv1).
    public init(_ text: String) throws(ParseError) {
        let bytes: [UInt8]
        do {
            if text.count == 46 && text.hasPrefix("Qm") {
                bytes = try Multibase.decodeBase58(text)
            } else {
                bytes = try Multibase.decode(text)
            }
        } catch {
            throw .malformed(error.description)
        }
        var offset = 0
        try self.init(bytes: bytes, offset: &offset)
        guard offset == bytes.count else { throw .malformed("trailing bytes") }
    }

    /// Parses the binary form at `offset`, moving `offset` past it (as in CAR sections).
    public init(bytes: some RandomAccessCollection<UInt8>, offset: inout Int) throws(ParseError) {
        func varint() throws(ParseError) -> UInt64 {
            do {
                return try Varint.decode(bytes, at: &offset)
            } catch {
                throw .malformed(error.description)
            }
        }
        let start = bytes.index(bytes.startIndex, offsetBy: offset)
        if bytes.count - offset >= 2 && bytes[start] == 0x12 && bytes[bytes.index(after: start)] == 0x20 {
            let hash = try Self.readMultihash(bytes, offset: &offset)
            self.init(version: 0, codec: .dagPB, hashCode: hash.code, digest: hash.digest)
            return
        }
        let version = try varint()
        guard version == 1 else { throw .unsupportedVersion(version) }
        let codecValue = try varint()
        guard let codec = Codec(rawValue: codecValue) else { throw .unsupportedCodec(codecValue) }
        let hash = try Self.readMultihash(bytes, offset: &offset)
        self.init(version: 1, codec: codec, hashCode: hash.code, digest: hash.digest)
    }

    /// Reads a multihash (sha2-256 or identity) at `offset`, moving `offset` past it.
    static func readMultihash(
        _ bytes: some RandomAccessCollection<UInt8>, offset: inout Int
    ) throws(ParseError) -> (code: HashCode, digest: [UInt8]) {
        let codeValue: UInt64
        let length: UInt64
        do {
            codeValue = try Varint.decode(bytes, at: &offset)
            length = try Varint.decode(bytes, at: &offset)
        } catch {
            throw .malformed(error.description)
        }
        guard let code = HashCode(rawValue: codeValue) else { throw .unsupportedHash(codeValue) }
        if code == .sha2_256 && length != 32 { throw .malformed("sha2-256 digest of \(length) bytes") }
        if code == .identity && length > UInt64(maximumIdentityLength) { throw .malformed("identity digest too long") }
        guard UInt64(bytes.count - offset) >= length else { throw .malformed("truncated digest") }
        let start = bytes.index(bytes.startIndex, offsetBy: offset)
        let digest = Array(bytes[start..<bytes.index(start, offsetBy: Int(length))])
        offset += Int(length)
        return (code, digest)
    }
}
