/// Base64 (RFC 4648), for HTTP Basic credentials and DNS-over-HTTPS queries.
enum Base64 {
    private static let standard = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    private static let urlSafe = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

    /// Standard base64 with `=` padding.
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let text = encode(bytes, alphabet: standard)
        return text + String(repeating: "=", count: (4 - text.count % 4) % 4)
    }

    /// Base64url without padding (RFC 8484's `dns` parameter).
    static func encodeURLSafe(_ bytes: some Collection<UInt8>) -> String {
        encode(bytes, alphabet: urlSafe)
    }

    private static func encode(_ bytes: some Collection<UInt8>, alphabet: [Character]) -> String {
        var output = ""
        var bits = 0
        var value = 0
        for byte in bytes {
            value = (value << 8 | Int(byte)) & 0xFFFF
            bits += 8
            while bits >= 6 {
                bits -= 6
                output.append(alphabet[(value >> bits) & 63])
            }
        }
        if bits > 0 { output.append(alphabet[(value << (6 - bits)) & 63]) }
        return output
    }
}
