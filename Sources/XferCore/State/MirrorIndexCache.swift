/// The current root's index, kept in StateDir (`index`) so that it is fetched once per root.
///
/// The file starts with `# root <path>`; a root without an index is remembered as
/// `# absent`, so calls do not ask again. A root that could not be asked is asked next time.
struct MirrorIndexCache: Sendable {
    let state: StateDirectory

    private var path: String { state.path + "/index" }

    /// The index of `root` (an `/ipfs` root), from the cache or fetched through `reader`.
    func index(for root: MirrorRoot, reader: RootFileReader) async -> MirrorIndex? {
        let rootLine = Array("# root \(root.description)\n".utf8)
        let absent = Array("# absent\n".utf8)
        if let cached = try? FileSystem.readBytes(path), cached.starts(with: rootLine) {
            let rest = Array(cached.dropFirst(rootLine.count))
            return rest == absent ? nil : try? MirrorIndex(bytes: rest)
        }
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
