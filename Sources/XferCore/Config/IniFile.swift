/// A pacman-style INI file read into sections of `Key = Value` lines, each remembering its line.
///
/// Comments are whole lines starting with `#` (after blanks), as in pacman's own parser; a `#`
/// later on a line is part of the value. A key without `=` is a flag with an empty value.
public struct IniFile: Sendable {
    /// One `Key = Value` line.
    public struct Entry: Sendable, Equatable {
        public var section: String
        public var key: String
        public var value: String
        public var line: Int
    }

    /// The file the entries came from, for messages.
    public let path: String
    /// Every entry, in file order.
    public let entries: [Entry]

    /// Parses INI text; `path` only names the file in errors.
    public init(text: String, path: String) throws(ConfigError) {
        self.path = path
        var entries: [Entry] = []
        var section: String?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let lineNumber = index + 1
            let line = rawLine.trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw ConfigError(path: path, line: lineNumber, message: "malformed section header '\(line)'")
                }
                section = String(line.dropFirst().dropLast())
                continue
            }
            guard let section else {
                throw ConfigError(path: path, line: lineNumber, message: "'\(line)' is outside any [section]")
            }
            if let equals = line.firstIndex(of: "=") {
                let key = line[..<equals].trimmingBlanks()
                let value = line[line.index(after: equals)...].trimmingBlanks()
                guard !key.isEmpty else {
                    throw ConfigError(path: path, line: lineNumber, message: "missing key before '='")
                }
                entries.append(Entry(section: section, key: key, value: value, line: lineNumber))
            } else {
                entries.append(Entry(section: section, key: line, value: "", line: lineNumber))
            }
        }
        self.entries = entries
    }

    /// Reads and parses the file at `path`.
    public init(contentsOf path: String) throws(ConfigError) {
        let text: String
        do {
            text = try FileSystem.readText(path)
        } catch {
            throw ConfigError(path: path, line: nil, message: "cannot read: \(error)")
        }
        try self.init(text: text, path: path)
    }
}
