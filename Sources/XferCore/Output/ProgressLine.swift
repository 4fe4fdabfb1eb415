@preconcurrency import Glibc

/// The one-line progress display on a terminal: file, bytes, rate, source.
///
/// pacman draws nothing for XferCommand downloads, so this is the user's only sign of life. It is
/// drawn only when stderr is a terminal (and TERM is not `dumb`); in hooks, logs and pipes the
/// tool prints errors only.
public struct ProgressLine: Sendable {
    let fileName: String
    let total: Int64?
    let width: Int

    /// True when stderr is an interactive terminal.
    public static var isEnabled: Bool {
        if let term = getenv("TERM"), String(cString: term) == "dumb" { return false }
        return isatty(STDERR_FILENO) != 0
    }

    init(fileName: String, total: Int64?) {
        self.fileName = fileName
        self.total = total
        self.width = Self.terminalWidth()
    }

    /// Redraws the line ten times a second until the task is cancelled.
    func run(board: ProgressBoard) async {
        while !Task.isCancelled {
            if let leader = board.leader() {
                draw(text(bytes: leader.bytes, rate: leader.rate, source: leader.label), final: false)
            }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
    }

    /// Draws the finished line and moves to the next line.
    func finish(bytes: Int64, seconds: Double, source: String) {
        draw(text(bytes: bytes, rate: Double(bytes) / max(seconds, 0.001), source: source), final: true)
    }

    /// Clears the line, before an error message.
    func clear() {
        fputs("\r\u{1B}[2K", stderr)
    }

    func text(bytes: Int64, rate: Double, source: String) -> String {
        var size = ByteCount.format(bytes)
        if let total, total > 0, bytes < total {
            size += " / \(ByteCount.format(total))"
        }
        return "\(fileName)  \(size)  \(ByteCount.format(Int64(rate)))/s  \(source)"
    }

    private func draw(_ text: String, final: Bool) {
        let clipped = text.count > width - 1 ? String(text.prefix(max(width - 1, 10))) : text
        fputs("\r\u{1B}[2K" + clipped + (final ? "\n" : ""), stderr)
    }

    private static func terminalWidth() -> Int {
        if let columns = getenv("COLUMNS").flatMap({ Int(String(cString: $0)) }), columns > 0 { return columns }
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}

/// Human-readable byte counts: `512 B`, `1.5 KiB`, `20.0 MiB`.
public enum ByteCount {
    public static func format(_ bytes: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        if unit == 0 { return "\(bytes) B" }
        return "\((value * 10).rounded() / 10) \(units[unit])"
    }
}
