/// What `ipfs-xfer stats` reports: where downloads came from, and what was seeded.
public struct TransferStats: Sendable, Equatable {
    /// Files and bytes served, per source kind.
    public var files: [SourceKind: Int] = [:]
    public var bytes: [SourceKind: Int64] = [:]
    /// Packages served without a sync db record to check them against, and their bytes.
    public var unverifiedFiles = 0
    public var unverifiedBytes: Int64 = 0
    public var seededFiles = 0
    public var seededBytes: Int64 = 0
    public var pendingSeeds = 0

    /// Reads the transfer log and the seeding state of `state`.
    public init(state: StateDirectory) {
        let text = (try? FileSystem.readText(state.path + "/transfers.log")) ?? ""
        for entry in text.split(separator: "\n").compactMap(TransferLogEntry.init(line:)) {
            files[entry.kind, default: 0] += 1
            bytes[entry.kind, default: 0] += entry.bytes
            if entry.unverified {
                unverifiedFiles += 1
                unverifiedBytes += entry.bytes
            }
        }
        let queue = SeedQueue(state: state)
        let seeded = queue.seeded()
        seededFiles = seeded.count
        seededBytes = seeded.reduce(0) { $0 + $1.size }
        pendingSeeds = queue.pending().count
    }

    /// Bytes that came from IPFS rather than the HTTP mirrors.
    public var ipfsBytes: Int64 {
        bytes.filter { $0.key.isIPFS }.values.reduce(0, +)
    }

    /// The report, one fact per line.
    public var text: String {
        var lines: [String] = []
        for kind in SourceKind.allCases where files[kind] != nil {
            lines.append("\(kind.rawValue): \(files[kind]!) files, \(bytes[kind] ?? 0) bytes")
        }
        let total = bytes.values.reduce(0, +)
        if total > 0 {
            lines.append("from IPFS: \(ipfsBytes) of \(total) bytes (\(ipfsBytes * 100 / total)%)")
        }
        if unverifiedFiles > 0 {
            lines.append("unverified: \(unverifiedFiles) packages, \(unverifiedBytes) bytes (no sync db listed them)")
        }
        lines.append("seeded: \(seededFiles) files, \(seededBytes) bytes; waiting: \(pendingSeeds)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// The same as a node-exporter textfile (Prometheus text format).
    public var prometheus: String {
        var lines = [
            "# HELP ipfs_xfer_transfer_bytes_total Bytes ipfs-xfer downloaded, by source kind.",
            "# TYPE ipfs_xfer_transfer_bytes_total counter",
        ]
        lines += SourceKind.allCases.map { "ipfs_xfer_transfer_bytes_total{kind=\"\($0.rawValue)\"} \(bytes[$0] ?? 0)" }
        lines += [
            "# HELP ipfs_xfer_transfer_files_total Files ipfs-xfer downloaded, by source kind.",
            "# TYPE ipfs_xfer_transfer_files_total counter",
        ]
        lines += SourceKind.allCases.map { "ipfs_xfer_transfer_files_total{kind=\"\($0.rawValue)\"} \(files[$0] ?? 0)" }
        lines += [
            "# HELP ipfs_xfer_unverified_files_total Packages served without a sync db record to check them against.",
            "# TYPE ipfs_xfer_unverified_files_total counter",
            "ipfs_xfer_unverified_files_total \(unverifiedFiles)",
            "# HELP ipfs_xfer_seeded_files Files seeded into the local kubo node.",
            "# TYPE ipfs_xfer_seeded_files gauge",
            "ipfs_xfer_seeded_files \(seededFiles)",
            "# HELP ipfs_xfer_seeded_bytes Bytes seeded into the local kubo node.",
            "# TYPE ipfs_xfer_seeded_bytes gauge",
            "ipfs_xfer_seeded_bytes \(seededBytes)",
            "# HELP ipfs_xfer_seed_pending Files waiting to be seeded.",
            "# TYPE ipfs_xfer_seed_pending gauge",
            "ipfs_xfer_seed_pending \(pendingSeeds)",
        ]
        return lines.joined(separator: "\n") + "\n"
    }
}
