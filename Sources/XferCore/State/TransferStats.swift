import Glibc

/// What `ipfs-xfer stats` reports: where downloads came from, how each source did, and what was seeded.
public struct TransferStats: Sendable, Equatable {
    /// What one source did over the log, and its remembered speed.
    public struct SourceLine: Sendable, Equatable {
        public var label: String
        public var files = 0
        public var served: Int64 = 0
        public var wasted: Int64 = 0
        public var speed: Speed?
    }

    /// Files and bytes served, per source kind.
    public var files: [SourceKind: Int] = [:]
    public var bytes: [SourceKind: Int64] = [:]
    /// Packages served without a sync db record to check them against, and their bytes.
    public var unverifiedFiles = 0
    public var unverifiedBytes: Int64 = 0
    public var seededFiles = 0
    public var seededBytes: Int64 = 0
    public var pendingSeeds = 0
    /// Per source, sorted by label.
    public var sources: [SourceLine] = []

    /// Reads the transfer log and the seeding state of `state`.
    public init(state: StateDirectory) {
        let text = (try? FileSystem.readText(state.path + "/transfers.log")) ?? ""
        for entry in text.split(separator: "\n").compactMap(TransferLogEntry.init(line:)) {
            if !entry.isWasteOnly {
                files[entry.kind, default: 0] += 1
                bytes[entry.kind, default: 0] += entry.bytes
            }
            if entry.unverified {
                unverifiedFiles += 1
                unverifiedBytes += entry.bytes
            }
            if let index = sources.firstIndex(where: { $0.label == entry.source }) {
                sources[index].add(entry)
            } else {
                var line = SourceLine(label: entry.source)
                line.add(entry)
                sources.append(line)
            }
        }
        let rates = state.loadRates()
        for record in rates.records where !sources.contains(where: { $0.label == record.key }) {
            sources.append(SourceLine(label: record.key))
        }
        let now = Int64(time(nil))
        for index in sources.indices { sources[index].speed = rates.speed(of: sources[index].label, now: now) }
        sources.sort { $0.label < $1.label }
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
        if !sources.isEmpty { lines.append("sources:") }
        for source in sources {
            var line = "  \(source.label): served \(source.served) bytes in \(source.files) files, wasted \(source.wasted) bytes"
            if let speed = source.speed {
                line += ", \(Int(speed.bytesPerSecond.rounded())) B/s, first byte \(Int((speed.firstByte * 1000).rounded())) ms"
            }
            lines.append(line)
        }
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
        lines += [
            "# HELP ipfs_xfer_source_bytes_total Bytes each source supplied.",
            "# TYPE ipfs_xfer_source_bytes_total counter",
        ]
        lines += sources.map { "ipfs_xfer_source_bytes_total{source=\"\(Self.escaped($0.label))\"} \($0.served)" }
        lines += [
            "# HELP ipfs_xfer_source_wasted_bytes_total Bytes each source sent that were not used.",
            "# TYPE ipfs_xfer_source_wasted_bytes_total counter",
        ]
        lines += sources.map { "ipfs_xfer_source_wasted_bytes_total{source=\"\(Self.escaped($0.label))\"} \($0.wasted)" }
        lines += [
            "# HELP ipfs_xfer_source_rate_bytes_per_second Each source's remembered rate.",
            "# TYPE ipfs_xfer_source_rate_bytes_per_second gauge",
        ]
        lines += sources.compactMap { source in
            source.speed.map { "ipfs_xfer_source_rate_bytes_per_second{source=\"\(Self.escaped(source.label))\"} \(Int($0.bytesPerSecond.rounded()))" }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A label value as the Prometheus text format quotes it.
    private static func escaped(_ value: String) -> String {
        var escaped = ""
        for character in value {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}

extension TransferStats.SourceLine {
    /// Counts one log line of this source.
    mutating func add(_ entry: TransferLogEntry) {
        if !entry.isWasteOnly { files += 1 }
        served += entry.bytes
        wasted += entry.wasted
    }
}
