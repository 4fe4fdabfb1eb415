import Glibc

/// The time of day as one number: what file timestamps (ctime, mtime) are read against.
public enum WallClock {
    /// Nanoseconds since the epoch (CLOCK_REALTIME).
    public static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return nanoseconds(now)
    }

    /// A time of day (a file's ctime, say) in nanoseconds since the epoch.
    public static func nanoseconds(_ time: timespec) -> Int64 {
        Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
