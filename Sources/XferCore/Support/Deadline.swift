/// Work that may take at most so long.
enum Deadline {
    private enum Finish<T: Sendable>: Sendable {
        case done(T)
        case late
    }

    /// The value of `work`, or nil when `seconds` passed first (the work is then cancelled and
    /// awaited, so it must stop promptly when cancelled, as transfers do).
    static func value<T: Sendable>(within seconds: Double, _ work: @escaping @Sendable () async -> T?) async -> T? {
        await withTaskGroup(of: Finish<T?>.self) { group in
            group.addTask { .done(await work()) }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(max(0, seconds) * 1e9))
                return .late
            }
            let first = await group.next()
            group.cancelAll()
            if case .done(let value)? = first { return value }
            return nil
        }
    }
}
