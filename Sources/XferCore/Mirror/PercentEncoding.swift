/// Percent-encoding of URL path segments and query values, for names with characters such as spaces.
enum PercentEncoding {
    /// Encodes every byte outside RFC 3986's unreserved set and the sub-delimiters pacman names use.
    static func encodeSegment(_ segment: String) -> String {
        encode(segment, keeping: "-._~:@+!$&'()*,;=")
    }

    /// Encodes a query value: only the unreserved set and `/` stay as they are.
    static func encodeQueryValue(_ value: String) -> String {
        encode(value, keeping: "-._~/")
    }

    /// Decodes `%XX` escapes; nil when an escape is malformed or the result is not UTF-8.
    static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(value)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func encode(_ text: String, keeping extra: String) -> String {
        var result = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            let isAllowed = (byte < 0x80) && (
                (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z") || (scalar >= "0" && scalar <= "9")
                    || extra.unicodeScalars.contains(scalar))
            if isAllowed {
                result.unicodeScalars.append(scalar)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (byte < 16 ? "0" + hex : hex)
            }
        }
        return result
    }
}
