/// The `Server` lines of pacman mirrorlists, in order: the HTTP fallback.
public struct Mirrorlist: Sendable, Equatable {
    /// The server templates, first to last, without duplicates.
    public let servers: [ServerTemplate]

    public init(servers: [ServerTemplate]) {
        self.servers = Self.firstOccurrences(servers)
    }

    /// The templates without repeats, each at its first place.
    ///
    /// Found by sorting rather than with a `Set`: a `Set<String>` is often the first hashed
    /// collection of pacman's per-file call, and its type's first use costs a conformance scan
    /// of the whole binary. A mirrorlist with every Arch mirror enabled (~1 000) still sorts in
    /// well under a millisecond.
    static func firstOccurrences(_ servers: [ServerTemplate]) -> [ServerTemplate] {
        let byText = servers.indices.sorted { left, right in
            servers[left].text == servers[right].text ? left < right : servers[left].text < servers[right].text
        }
        var isRepeat = [Bool](repeating: false, count: servers.count)
        var position = 1
        while position < byText.count {
            if servers[byText[position]].text == servers[byText[position - 1]].text {
                isRepeat[byText[position]] = true
            }
            position += 1
        }
        return servers.indices.filter { !isRepeat[$0] }.map { servers[$0] }
    }

    /// Parses mirrorlist text: `Server = URL` lines; whole-line `#` comments are skipped.
    public init(text: String) {
        var servers: [ServerTemplate] = []
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingBlanks()
            guard !trimmed.hasPrefix("#"), let equals = trimmed.firstIndex(of: "=") else { continue }
            guard trimmed[..<equals].trimmingBlanks() == "Server" else { continue }
            let url = trimmed[trimmed.index(after: equals)...].trimmingBlanks()
            if !url.isEmpty { servers.append(ServerTemplate(url)) }
        }
        self.init(servers: servers)
    }

    /// Reads and joins several mirrorlists; files that cannot be read are skipped.
    public init(files: [String]) {
        var servers: [ServerTemplate] = []
        for path in files {
            if let text = try? FileSystem.readText(path) {
                servers += Mirrorlist(text: text).servers
            }
        }
        self.init(servers: servers)
    }
}
