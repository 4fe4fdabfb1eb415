import IPFSData

/// Finds the root one call uses: a fresh cached answer, a new resolution, or a stale answer.
///
/// A fresh answer (younger than its TTL) is used as it is. A stale one is used at once for a
/// package while a new resolution runs alongside the download (stale-while-revalidate); a
/// database waits for the new answer, since it decides what the whole transaction sees. When
/// every resolver fails, an answer up to RootStaleLimit old still serves (stale-if-error).
/// Without any answer the configured `/ipns` root is used as it is, by the trusted gateways
/// and the mount only.
public struct RootLookup: Sendable {
    /// The root chosen, and what to finish before the call ends.
    struct Choice: Sendable {
        /// The root the sources use.
        var root: MirrorRoot
        /// The cached answer it came from, if any.
        var resolved: ResolvedRoot?
        /// A resolution still running (stale-while-revalidate), to be awaited at the end.
        var refresh: Task<Void, Never>?
    }

    let config: XferConfig
    let userAgent: String?
    let warn: @Sendable (String) -> Void
    /// A resolver that failed is said once per transaction.
    var warnings = TransactionWarnings(.thisProcess)

    /// Chooses the root for a call; `waitForFresh` when the file is a database.
    func choose(state: StateDirectory?, now: Int64, waitForFresh: Bool) async -> Choice? {
        guard let configured = config.mirrorRoot else { return nil }
        let key = configured.description
        guard let state else {
            if let answer = try? await resolver.resolve(configured, seen: [:], now: now), let root = answer.root.root {
                return Choice(root: root, resolved: answer.root)
            }
            return Choice(root: configured)
        }
        let cache = RootCache(state: state)
        let entry = cache.entry(for: key)
        if configured.namespace == .ipfs {
            // Cached only for the root's lastupdate, read once per root.
            return Choice(root: configured, resolved: entry ?? ResolvedRoot(
                path: key, source: "configured", ttl: .infinity, resolvedAt: now))
        }
        if let entry, let root = entry.root, entry.isFresh(now: now) {
            return Choice(root: root, resolved: entry)
        }
        if !waitForFresh, let entry, entry.isUsableStale(now: now, limit: config.rootStaleLimit), let root = entry.root {
            let refresh = Task { _ = await refreshed(configured, cache: cache, now: now) }
            return Choice(root: root, resolved: entry, refresh: refresh)
        }
        if let entry = await refreshed(configured, cache: cache, now: now), let root = entry.root {
            return Choice(root: root, resolved: entry)
        }
        return Choice(root: configured)
    }

    /// Resolves `root` now, for `ipfs-xfer resolve`: with the rollback protection of StateDir
    /// when it can be read, storing the answer there when `root` is the configured one.
    public static func resolveNow(_ root: MirrorRoot, config: XferConfig, userAgent: String?, now: Int64)
        async throws(RootResolver.Failure) -> ResolvedRoot {
        let cache = (try? StateDirectory(path: config.stateDir)).map(RootCache.init(state:))
        let answer = try await RootResolver(config: config, userAgent: userAgent)
            .resolve(root, seen: cache?.sequences() ?? [:], now: now)
        if let cache, root == config.mirrorRoot, root.namespace == .ipns {
            try? cache.store(answer.root, for: root.description, sequences: answer.sequences)
        }
        return answer.root
    }

    private var resolver: RootResolver { RootResolver(config: config, userAgent: userAgent) }

    /// Resolves under the lock (another call may have just done it), stores the answer, and
    /// falls back to a stale one within the limit.
    private func refreshed(_ configured: MirrorRoot, cache: RootCache, now: Int64) async -> ResolvedRoot? {
        let key = configured.description
        return await cache.whileLocked(timeout: config.resolveTimeout) {
            let cached = cache.entry(for: key)
            if let cached, cached.isFresh(now: now) { return cached }
            do {
                let answer = try await resolver.resolve(configured, seen: cache.sequences(), now: now)
                var resolved = answer.root
                if resolved.path == cached?.path { resolved.lastUpdate = cached?.lastUpdate }
                do {
                    try cache.store(resolved, for: key, sequences: answer.sequences)
                } catch {
                    warn("cannot store the resolved root in \(config.stateDir): \(error)")
                }
                return resolved
            } catch {
                if let cached, cached.isUsableStale(now: now, limit: config.rootStaleLimit) { return cached }
                warnings.once("resolve", "\(error)", warn: warn)
                return nil
            }
        }
    }
}
