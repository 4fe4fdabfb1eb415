import FoundationEssentials

/// Base64 (RFC 4648), for HTTP Basic credentials and DNS-over-HTTPS queries.
enum Base64 {
    /// Standard base64 with `=` padding.
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Base64url without padding (RFC 8484's `dns` parameter).
    static func encodeURLSafe(_ bytes: some Collection<UInt8>) -> String {
        String(encode(bytes).compactMap { character -> Character? in
            switch character {
            case "=": nil
            case "+": "-"
            case "/": "_"
            default: character
            }
        })
    }
}
