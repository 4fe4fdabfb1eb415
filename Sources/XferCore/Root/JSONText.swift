/// Reads a string member out of a small JSON object, such as kubo RPC's `{"Path":"/ipfs/…"}`.
///
/// Only what ipfs-xfer needs: the first `"key": "string"` pair at any depth, with JSON's
/// escapes decoded. Anything else in the text is skipped over, not validated.
enum JSONText {
    /// The string value of the first member named `key`, or nil.
    static func string(forKey key: String, in text: String) -> String? {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        while index < scalars.count {
            guard scalars[index] == "\"" else {
                index += 1
                continue
            }
            guard let (name, afterName) = readString(scalars, from: index) else { return nil }
            var next = afterName
            while next < scalars.count, scalars[next] == " " || scalars[next] == "\n" || scalars[next] == "\t" || scalars[next] == "\r" {
                next += 1
            }
            if name == key, next < scalars.count, scalars[next] == ":" {
                next += 1
                while next < scalars.count, scalars[next] == " " || scalars[next] == "\n" || scalars[next] == "\t" || scalars[next] == "\r" {
                    next += 1
                }
                guard next < scalars.count, scalars[next] == "\"" else { return nil }
                return readString(scalars, from: next)?.0
            }
            index = afterName
        }
        return nil
    }

    /// Reads the string starting at the quote at `start`; returns it and the index after its closing quote.
    private static func readString(_ scalars: [Unicode.Scalar], from start: Int) -> (String, Int)? {
        var result = String.UnicodeScalarView()
        var index = start + 1
        while index < scalars.count {
            let scalar = scalars[index]
            switch scalar {
            case "\"":
                return (String(result), index + 1)
            case "\\":
                guard index + 1 < scalars.count else { return nil }
                let escaped = scalars[index + 1]
                index += 2
                switch escaped {
                case "n": result.append("\n")
                case "t": result.append("\t")
                case "r": result.append("\r")
                case "b": result.append("\u{8}")
                case "f": result.append("\u{c}")
                case "u":
                    guard index + 4 <= scalars.count,
                          let code = UInt32(String(String.UnicodeScalarView(scalars[index..<index + 4])), radix: 16),
                          let decoded = Unicode.Scalar(code) else { return nil }
                    result.append(decoded)
                    index += 4
                default: result.append(escaped)
                }
            default:
                result.append(scalar)
                index += 1
            }
        }
        return nil
    }
}
