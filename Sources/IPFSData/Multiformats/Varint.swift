/// Unsigned LEB128 varints as multiformats and protobuf use them.
public enum Varint {
    /// Why bytes are not a valid varint.
    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case truncated
        case overflow
        case notMinimal

        public var description: String {
            switch self {
            case .truncated: "truncated varint"
            case .overflow: "varint larger than 64 bits"
            case .notMinimal: "varint not minimally encoded"
            }
        }
    }

    /// Appends the encoding of `value` to `bytes`.
    public static func append(_ value: UInt64, to bytes: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    /// The encoding of `value`.
    public static func encode(_ value: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        append(value, to: &bytes)
        return bytes
    }

    /// How many bytes `value` takes.
    public static func length(_ value: UInt64) -> Int {
        var count = 1
        var value = value
        while value >= 0x80 {
            value >>= 7
            count += 1
        }
        return count
    }

    /// Decodes a varint at `offset`, moving `offset` past it. Multiformats require minimal encodings.
    public static func decode(_ bytes: some RandomAccessCollection<UInt8>, at offset: inout Int) throws(DecodeError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var index = offset
        while true {
            guard index < bytes.count else { throw .truncated }
            let byte = bytes[bytes.index(bytes.startIndex, offsetBy: index)]
            index += 1
            if shift == 63 && byte > 1 { throw .overflow }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && shift > 0 { throw .notMinimal }
                offset = index
                return result
            }
            shift += 7
            if shift > 63 { throw .overflow }
        }
    }
}
