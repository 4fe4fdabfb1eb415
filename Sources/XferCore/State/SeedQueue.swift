/// The seeding work kept in StateDir: what is still to be put into kubo (`seed-queue`) and
/// what was (`seeded`: file, CID, size, time, cache path).
///
/// The hook only adds to the queue, so it returns at once and kubo being down costs pacman
/// nothing; a worker empties it. Both files are rewritten atomically under `seed.lock`.
public struct SeedQueue: Sendable {
    /// A file that is in kubo.
    public struct Seeded: Sendable, Equatable {
        public var fileName: String
        public var cid: String
        public var size: Int64
        public var time: Int64
        public var cachePath: String
    }

    public let state: StateDirectory

    private var queuePath: String { state.path + "/seed-queue" }
    private var seededPath: String { state.path + "/seeded" }
    private var lockPath: String { state.path + "/seed.lock" }

    public init(state: StateDirectory) {
        self.state = state
    }

    /// The files waiting, by file name.
    public func pending() -> [SeedTarget] {
        StateTable.read(queuePath).sorted { $0.key < $1.key }.compactMap { key, rest in
            SeedTarget(fields: [Substring(key)] + rest)
        }
    }

    /// The files seeded so far.
    public func seeded() -> [Seeded] {
        StateTable.read(seededPath).sorted { $0.key < $1.key }.compactMap { key, fields in
            guard fields.count == 4, let size = Int64(fields[1]), let time = Int64(fields[2]) else { return nil }
            return Seeded(fileName: key, cid: String(fields[0]), size: size, time: time, cachePath: String(fields[3]))
        }
    }

    /// Adds files to the queue (a file already seeded from the same cache path is skipped).
    public func add(_ targets: [SeedTarget]) throws(SystemError) {
        try locked { () throws(SystemError) in
            let done = Set(seeded().map { $0.cachePath })
            var queue = StateTable.read(queuePath)
            for target in targets where !done.contains(target.cachePath) {
                queue[target.fileName] = target.fields.dropFirst().map { Substring($0) }
            }
            try StateTable.write(queue, to: queuePath)
        }
    }

    /// Takes a file off the queue, recording it as seeded when it was.
    public func finish(_ target: SeedTarget, seeded record: Seeded?) throws(SystemError) {
        try locked { () throws(SystemError) in
            var queue = StateTable.read(queuePath)
            queue[target.fileName] = nil
            try StateTable.write(queue, to: queuePath)
            guard let record else { return }
            var done = StateTable.read(seededPath)
            done[record.fileName] = [record.cid, String(record.size), String(record.time), record.cachePath].map { Substring($0) }
            try StateTable.write(done, to: seededPath)
        }
    }

    /// Forgets a seeded file (it was unpinned).
    public func forget(_ fileName: String) throws(SystemError) {
        try locked { () throws(SystemError) in
            var done = StateTable.read(seededPath)
            done[fileName] = nil
            try StateTable.write(done, to: seededPath)
        }
    }

    private func locked(_ body: () throws(SystemError) -> Void) throws(SystemError) {
        try state.locked(lockPath, body)
    }
}
