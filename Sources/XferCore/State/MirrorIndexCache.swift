/// The current root's index, kept in StateDir (`index`) so that it is fetched once per root.
///
/// The file starts with `# root <path>`; a root without an index is remembered as
/// `# absent`, so calls do not ask again. A root that could not be asked is asked next time.
struct MirrorIndexCache: Sendable {
    /// What the cache knows about a root's index.
    enum Cached {
        case index(MirrorIndex)
        case absent
        case unknown
    }

    let state: StateDirectory

    private var path: String { state.path + "/index" }
    private static let absent = Array("# absent\n".utf8)

    private static func rootLine(_ root: MirrorRoot) -> [UInt8] {
        Array("# root \(root.description)\n".utf8)
    }

    /// What is cached for `root`, without asking any source.
    func cached(for root: MirrorRoot) -> Cached {
        let rootLine = Self.rootLine(root)
        guard let cached = try? FileSystem.readBytes(path), cached.starts(with: rootLine) else { return .unknown }
        let rest = cached.dropFirst(rootLine.count)
        guard !rest.elementsEqual(Self.absent), let index = try? MirrorIndex(bytes: rest) else { return .absent }
        return .index(index)
    }

    /// The index of `root` (an `/ipfs` root), from the cache or fetched through `reader`.
    func index(for root: MirrorRoot, reader: RootFileReader) async -> MirrorIndex? {
        switch cached(for: root) {
        case .index(let index): return index
        case .absent: return nil
        case .unknown: return await refresh(for: root, reader: reader)
        }
    }

    /// Fetches the index of `root` and caches what was found (or that there is none).
    @discardableResult
    func refresh(for root: MirrorRoot, reader: RootFileReader) async -> MirrorIndex? {
        let rootLine = Self.rootLine(root)
        let absent = Self.absent
        switch await reader.read(MirrorIndex.fileName, at: root, limit: MirrorIndex.maximumSize) {
        case .found(let bytes):
            let index = try? MirrorIndex(bytes: bytes)
            try? FileSystem.writeAtomically(path, bytes: rootLine + (index == nil ? absent : bytes), mode: 0o664)
            return index
        case .absent:
            try? FileSystem.writeAtomically(path, bytes: rootLine + absent, mode: 0o664)
            return nil
        case .unreachable:
            return nil
        }
    }
}
