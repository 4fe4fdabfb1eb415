/// A StateDir file of tab-separated lines keyed by their first field, rewritten atomically.
///
/// Lines that do not split into a key and at least one field are skipped, so a damaged file
/// reads as the lines that are still whole.
enum StateTable {
    /// The lines of `path` by key (the fields after the key); empty when there is no file.
    static func read(_ path: String) -> [String: [Substring]] {
        guard let text = try? FileSystem.readText(path) else { return [:] }
        var table: [String: [Substring]] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count >= 2, !fields[0].isEmpty else { continue }
            table[String(fields[0])] = Array(fields.dropFirst())
        }
        return table
    }

    /// Replaces `path` with the table, sorted by key, group-writable.
    static func write(_ table: [String: [Substring]], to path: String) throws(SystemError) {
        let text = table.keys.sorted().map { key in ([Substring(key)] + table[key]!).joined(separator: "\t") + "\n" }.joined()
        try FileSystem.writeAtomically(path, text, mode: 0o664)
    }
}
