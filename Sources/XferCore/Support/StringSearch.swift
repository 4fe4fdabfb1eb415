extension StringProtocol {
    /// The first range where `needle` occurs, found with `hasPrefix` alone.
    ///
    /// The standard `firstRange(of:)` lives in the regex library, whose first use costs a
    /// measurable part of a call that pacman makes hundreds of times; URLs are short.
    func firstRange(ofLiteral needle: String) -> Range<Index>? {
        var index = startIndex
        while index < endIndex {
            let rest = self[index...]
            if rest.hasPrefix(needle) {
                return index..<self.index(index, offsetBy: needle.count)
            }
            index = self.index(after: index)
        }
        return nil
    }

    /// The string without leading and trailing spaces, tabs and carriage returns.
    func trimmingBlanks() -> String {
        let isBlank = { (character: Character) in character == " " || character == "\t" || character == "\r" }
        guard let first = firstIndex(where: { !isBlank($0) }) else { return "" }
        let last = lastIndex(where: { !isBlank($0) })!
        return String(self[first...last])
    }
}
