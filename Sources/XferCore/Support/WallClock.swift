import Glibc

/// The time of day as one number: what file timestamps (ctime, mtime) are read against.
public enum WallClock {
    /// Nanoseconds since the epoch (CLOCK_REALTIME).
    public static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
