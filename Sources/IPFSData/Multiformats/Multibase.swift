/// The multibase encodings IPFS text forms use: base58btc (`z`, and bare for CIDv0), base32
/// lower-case without padding (`b`), and base36 lower-case (`k`).
public enum Multibase {
    /// Why a string could not be decoded.
    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case unsupportedPrefix(Character)
        case invalidCharacter(Character)
        case empty

        public var description: String {
            switch self {
            case .unsupportedPrefix(let prefix): "unsupported multibase prefix '\(prefix)'"
            case .invalidCharacter(let character): "invalid character '\(character)'"
            case .empty: "empty string"
            }
        }
    }

    static let base58Alphabet = Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
    static let base32Alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
    static let base36Alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
    /// Each byte's value in an alphabet (-1 when it is not in it), for decoding without a search.
    static let base58Values = values(of: base58Alphabet)
    static let base36Values = values(of: base36Alphabet)

    private static func values(of alphabet: [UInt8]) -> [Int8] {
        var values = [Int8](repeating: -1, count: 256)
        for (value, character) in alphabet.enumerated() { values[Int(character)] = Int8(value) }
        return values
    }

    /// Decodes a multibase string (the first character names the base).
    public static func decode(_ text: String) throws(DecodeError) -> [UInt8] {
        guard let prefix = text.first else { throw .empty }
        let body = String(text.dropFirst())
        switch prefix {
        case "z": return try decodeBase(body, alphabet: base58Alphabet, values: base58Values)
        case "b": return try decodeBase32(body)
        case "B": return try decodeBase32(body.lowercased())
        case "k", "K": return try decodeBase(body.lowercased(), alphabet: base36Alphabet, values: base36Values)
        default: throw .unsupportedPrefix(prefix)
        }
    }

    /// base58btc without a prefix (CIDv0, peer IDs).
    public static func base58(_ bytes: [UInt8]) -> String {
        encodeBase(bytes, alphabet: base58Alphabet, base: 58, limbBase: 656_356_768, digitsPerLimb: 5)  // 58^5
    }

    /// Decodes base58btc without a prefix.
    public static func decodeBase58(_ text: String) throws(DecodeError) -> [UInt8] {
        try decodeBase(text, alphabet: base58Alphabet, values: base58Values)
    }

    /// base36 lower-case without a prefix.
    public static func base36(_ bytes: [UInt8]) -> String {
        encodeBase(bytes, alphabet: base36Alphabet, base: 36, limbBase: 2_176_782_336, digitsPerLimb: 6)  // 36^6
    }

    /// RFC 4648 base32, lower-case, no padding, without a prefix.
    public static func base32(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                output.append(base32Alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { output.append(base32Alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes RFC 4648 base32 (lower-case, no padding).
    public static func decodeBase32(_ text: String) throws(DecodeError) -> [UInt8] {
        var output: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text.utf8 {
            guard let value = base32Alphabet.firstIndex(of: character) else {
                throw .invalidCharacter(Character(Unicode.Scalar(character)))
            }
            buffer = (buffer << 5) | UInt32(value)
            bits += 5
            if bits >= 8 {
                output.append(UInt8((buffer >> UInt32(bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return output
    }

    /// Big-number base conversion with leading zero bytes kept as leading zero digits. The number
    /// is kept in limbs of `digitsPerLimb` digits (`limbBase` = base^digitsPerLimb < 2^32),
    /// little-endian, and fed four bytes at a time: a CID costs a few dozen divisions instead of
    /// hundreds. Inlined with constant bases, the divisions become multiplications (an index or a
    /// state file formats tens of thousands of CIDs).
    @inline(__always)
    private static func encodeBase(
        _ bytes: [UInt8], alphabet: [UInt8], base: UInt64, limbBase: UInt64, digitsPerLimb: Int
    ) -> String {
        let zeros = bytes.prefix { $0 == 0 }.count
        var limbs: [UInt64] = []
        limbs.reserveCapacity(bytes.count / 3 + 1)
        var start = zeros
        while start < bytes.count {
            let end = min(start + 4, bytes.count)
            var carry: UInt64 = 0
            for byte in bytes[start..<end] { carry = carry << 8 | UInt64(byte) }
            let shift = UInt64(8 * (end - start))
            for index in limbs.indices {
                let value = limbs[index] << shift + carry
                limbs[index] = value % limbBase
                carry = value / limbBase
            }
            while carry > 0 {
                limbs.append(carry % limbBase)
                carry /= limbBase
            }
            start = end
        }
        var digits: [UInt8] = []  // little-endian digits in `base`
        digits.reserveCapacity(limbs.count * digitsPerLimb)
        for limb in limbs {
            var value = limb
            for _ in 0..<digitsPerLimb {
                digits.append(UInt8(value % base))
                value /= base
            }
        }
        while digits.last == 0 { digits.removeLast() }
        return String(unsafeUninitializedCapacity: zeros + digits.count) { text in
            for index in 0..<zeros { text[index] = alphabet[0] }
            for (index, digit) in digits.reversed().enumerated() { text[zeros + index] = alphabet[Int(digit)] }
            return zeros + digits.count
        }
    }

    /// The inverse of ``encodeBase(_:alphabet:base:limbBase:digitsPerLimb:)``, four digits at a time.
    private static func decodeBase(_ text: String, alphabet: [UInt8], values table: [Int8]) throws(DecodeError) -> [UInt8] {
        let base = UInt64(alphabet.count)
        let characters = Array(text.utf8)
        let zeros = characters.prefix { $0 == alphabet[0] }.count
        var values: [UInt8] = []
        values.reserveCapacity(characters.count)
        for character in characters[zeros...] {
            let value = table[Int(character)]
            guard value >= 0 else { throw .invalidCharacter(Character(Unicode.Scalar(character))) }
            values.append(UInt8(value))
        }
        var bytes: [UInt8] = []  // little-endian base-256
        bytes.reserveCapacity(values.count)
        var start = 0
        while start < values.count {
            let end = min(start + 4, values.count)
            var carry: UInt64 = 0
            var multiplier: UInt64 = 1
            for value in values[start..<end] {
                carry = carry * base + UInt64(value)
                multiplier *= base
            }
            for index in bytes.indices {
                carry += UInt64(bytes[index]) * multiplier
                bytes[index] = UInt8(carry & 0xFF)
                carry >>= 8
            }
            while carry > 0 {
                bytes.append(UInt8(carry & 0xFF))
                carry >>= 8
            }
            start = end
        }
        return [UInt8](repeating: 0, count: zeros) + bytes.reversed()
    }
}
