import Glibc
import IPFSData

extension FetchJob {
    /// A segmented download that finished: the verified file and who sent what.
    struct SegmentedResult: Sendable {
        var path: String
        var report: SegmentedDownload.Report
        var seconds: Double

        /// The sources that sent part of the file, and how much.
        private var contributors: [(source: RangeSource, bytes: Int64)] { report.bytes.filter { $0.bytes > 0 } }

        /// Dropped sources failed; the ones that sent part of the file succeeded.
        var healthChanges: [HealthChange] {
            report.dropped.map { .failed($0.source.healthKey) } + contributors.map { .succeeded($0.source.healthKey) }
        }

        /// The file as the job's output, under the kind of source that sent the most.
        func delivery(fileName: String, now: Int64) -> Delivery {
            let total = contributors.reduce(Int64(0)) { $0 + $1.bytes }
            let main = contributors.max { $0.bytes < $1.bytes }!
            let label = "segmented: " + contributors.map { "\($0.source.label) \(100 * $0.bytes / max(total, 1))%" }
                .joined(separator: ", ")
            let entries = contributors.map { contributor in
                TransferLogEntry(
                    time: now, file: fileName, bytes: contributor.bytes, seconds: seconds, kind: contributor.source.kind,
                    source: "segmented " + contributor.source.label)
            }
            return Delivery(
                path: path, outcome: Outcome(kind: main.source.kind, source: label, bytes: total, seconds: seconds, resumedFrom: 0),
                logEntries: entries)
        }
    }

    /// The sources a package of known CID can come from in segments: trusted gateways and
    /// mirrors by byte range, trustless gateways by raw blocks; sources known to be down are left out.
    func rangeSources(fileCID: CID, mapping: URLMapper.Mapping, down: Set<String>) -> [RangeSource] {
        var sources: [RangeSource] = []
        for gateway in config.gateways {
            sources.append(RangeSource(
                kind: .gateway, label: "gateway \(gateway)", healthKey: "gateway \(gateway)",
                method: .byteRange(url: "\(gateway)/ipfs/\(fileCID)"), userAgent: userAgent))
        }
        for gateway in config.trustlessGateways {
            sources.append(RangeSource(
                kind: .trustless, label: "trustless \(gateway)", healthKey: "trustless \(gateway)",
                method: .rawBlocks(gateway: gateway), userAgent: userAgent))
        }
        if usesMirrors {
            for url in mapping.mirrorURLs where url.hasPrefix("http://") || url.hasPrefix("https://") {
                let origin = HTTPSource.origin(of: url)
                sources.append(RangeSource(
                    kind: .mirror, label: "mirror \(origin)", healthKey: "mirror \(origin)",
                    method: .byteRange(url: url), userAgent: userAgent))
            }
        }
        return sources.filter { !down.contains($0.healthKey) }
    }

    /// Fetches a big package in segments from several sources at once, when its CID is known
    /// and at least two sources can serve ranges; nil when that does not apply or did not work
    /// out (the race then fetches the file whole).
    func fetchSegmented(
        record: PackageRecord, fileCID: CID, mapping: URLMapper.Mapping, down: Set<String>, workspace: Workspace,
        board: ProgressBoard?
    ) async -> SegmentedResult? {
        guard let threshold = config.segmentThreshold, record.size >= threshold else { return nil }
        let sources = rangeSources(fileCID: fileCID, mapping: mapping, down: down)
        guard sources.count >= 2 else { return nil }
        let start = Monotonic.nanoseconds()
        let timeouts = Timeouts(connect: config.connectTimeout, stall: config.stallTimeout)
        let gateways = (config.gateways + config.trustlessGateways).filter {
            !down.contains("gateway \($0)") && !down.contains("trustless \($0)")
        }
        var layout: FileLayout?
        for gateway in gateways where layout == nil {
            layout = try? await FileLayout(file: fileCID) { cid in
                try await TrustlessGatewaySource.rawBlock(cid, from: gateway, timeouts: timeouts, userAgent: userAgent)
            }
        }
        guard let layout, layout.size == UInt64(record.size), layout.leaves.count > 1 else { return nil }
        let path = workspace.temporaryPath()
        workspace.markValid(path, upTo: 0)  // segments arrive in any order: nothing to keep on an interrupt
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        let progress = TransferProgress()
        board?.track("segmented", progress)
        defer { board?.untrack("segmented") }
        let download = SegmentedDownload(layout: layout, sources: sources, timeouts: timeouts, progress: progress)
        do {
            let report = try await download.run(into: fd, path: path)
            let hasher = try FileHasher(fd: fd, path: path)
            guard try hasher.finish(size: record.size) == record.sha256 else {
                warn("\(record.fileName): the segments match the DAG but not the sync db's sha256; fetching it whole")
                unlink(path)
                return nil
            }
            return SegmentedResult(path: path, report: report, seconds: Monotonic.seconds(since: start))
        } catch {
            unlink(path)
            return nil
        }
    }
}
