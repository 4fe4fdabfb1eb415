/// A configuration problem, named by file and line so it can be fixed without guessing.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The file with the problem.
    public var path: String
    /// The 1-based line, when the problem is on one line.
    public var line: Int?
    /// What is wrong.
    public var message: String

    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(path):\(line): \(message)" }
        return "\(path): \(message)"
    }
}
