import CForkReader

/// SIGINT, SIGTERM and SIGHUP, caught instead of ending the process, so that work in progress
/// can stop cleanly (partial downloads kept as `.part`, temporary files removed).
public enum Interrupts {
    /// Catches the signals from now on.
    public static func catchSignals() {
        xfer_catch_interrupts()
    }

    /// The last signal caught, or 0.
    public static var caught: Int32 {
        xfer_caught_signal()
    }
}
