/// pacman's file name rules, applied to every path segment that comes from a URL or a config.
///
/// Nothing that could climb out of the mirror root or mean something else to a gateway passes:
/// `.`-prefixed names (so `..` too), slashes, percent-escapes (an encoded slash or dot), query and
/// fragment marks, backslashes and control characters.
public enum PathSafety {
    /// The longest file name a segment may be (NAME_MAX).
    public static let maximumLength = 255

    /// True when `segment` is a plain name that can only mean itself.
    public static func isSafeSegment(_ segment: some StringProtocol) -> Bool {
        guard !segment.isEmpty, segment.utf8.count <= maximumLength, !segment.hasPrefix(".") else { return false }
        return segment.unicodeScalars.allSatisfy { scalar in
            scalar.value >= 0x20 && scalar.value != 0x7F && !"/\\%?#".unicodeScalars.contains(scalar)
        }
    }
}
