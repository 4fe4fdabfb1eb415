/// The `Server` lines of pacman mirrorlists, in order: the HTTP fallback.
public struct Mirrorlist: Sendable, Equatable {
    /// The server templates, first to last, without duplicates.
    public let servers: [ServerTemplate]

    public init(servers: [ServerTemplate]) {
        var seen = Set<String>()
        self.servers = servers.filter { seen.insert($0.text).inserted }
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
