import CurlTransfer

/// Keeps an IPFS root that is behind the HTTP mirror from serving databases.
///
/// pacman takes whatever database it is given without a word, so a stale root would hold a
/// whole system back. Arch mirrors carry their sync time in `lastupdate` at the top; a database
/// comes from IPFS only when the root's is known and not older than the mirror's (or the
/// mirror's cannot be read). Packages need no guard: they are verified against the database.
struct FreshnessGuard: Sendable {
    let config: XferConfig
    let userAgent: String?
    /// How long each read may take: a database call waits for them before it starts.
    let timeout: Double
    /// Sources known to be down, which are not asked.
    let down: Set<String>

    /// The decision, given both times.
    static func allowsIPFS(root: Int64?, mirror: Int64?) -> Bool {
        guard let mirror else { return true }
        guard let root else { return false }
        return root >= mirror
    }

    /// Reads `lastupdate` from the mirror top of the first mirror URLs that follow the layout.
    func mirrorLastUpdate(mapping: URLMapper.Mapping, file: RepoFile) async -> Int64? {
        let suffix = "/" + (config.layout.expand(repo: file.repo, arch: file.arch) + [file.fileName]).joined(separator: "/")
        for url in mapping.mirrorURLs.prefix(2) where url.hasSuffix(suffix) {
            if let value = await fetchNumber(String(url.dropLast(suffix.count)) + "/lastupdate") { return value }
        }
        return nil
    }

    /// Reads `lastupdate` at a root.
    func rootLastUpdate(root: MirrorRoot) async -> Int64? {
        guard case .found(let bytes) = await RootFileReader(config: config, userAgent: userAgent, timeout: timeout, down: down)
            .read("lastupdate", at: root, limit: 64) else { return nil }
        return Self.number(bytes)
    }

    private func fetchNumber(_ url: String) async -> Int64? {
        let request = TransferRequest(
            url: url, connectTimeout: min(config.connectTimeout, timeout), stallTimeout: timeout, userAgent: userAgent)
        let receiver = MemoryReceiver(limit: 64)
        guard (try? await CurlMulti.shared.perform(request, into: receiver)) != nil else { return nil }
        return Self.number(receiver.bytes)
    }

    /// A `lastupdate` file: a Unix time and a newline.
    static func number(_ bytes: [UInt8]) -> Int64? {
        let words = String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isWhitespace)
        return words.count == 1 ? Int64(words[0]) : nil
    }
}
