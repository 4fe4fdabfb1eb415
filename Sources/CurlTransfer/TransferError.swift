import CCurl

/// Why a transfer did not complete.
public enum TransferError: Error, CustomStringConvertible, Equatable {
    /// The server answered with an error status (HTTP 404, 500, …).
    case status(Int)
    /// Could not connect at all (refused, unreachable, DNS, connect timeout).
    case unreachable(String)
    /// No byte moved for the stall timeout.
    case stalled(seconds: Double)
    /// The server cannot resume at the offset asked for.
    case rangeNotSupported
    /// libcurl reported another error.
    case curl(code: Int, message: String)
    /// The receiver refused the data; its own error was thrown instead where it had one.
    case aborted(String)
    /// The transfer was cancelled by its caller.
    case cancelled

    public var description: String {
        switch self {
        case .status(let code): "HTTP \(code)"
        case .unreachable(let message): message
        case .stalled(let seconds): "stalled: no data for \(formatSeconds(seconds))"
        case .rangeNotSupported: "the server cannot resume (no byte ranges)"
        case .curl(_, let message): message
        case .aborted(let reason): reason
        case .cancelled: "cancelled"
        }
    }

    /// True when the failure says the source as a whole is unusable now, not just this file.
    public var isSourceFailure: Bool {
        switch self {
        case .unreachable, .stalled: true
        case .status(let code): code >= 500 || code == 429
        default: false
        }
    }

    /// Classifies a libcurl result code and its error text.
    static func from(code: CURLcode, message: String, status: Int, stallTimeout: Double) -> TransferError {
        switch code {
        case CURLE_HTTP_RETURNED_ERROR:
            return .status(status)
        case CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY:
            return .unreachable(message)
        case CURLE_OPERATION_TIMEDOUT:
            return message.contains("onnect") ? .unreachable(message) : .stalled(seconds: stallTimeout)
        case CURLE_RANGE_ERROR, CURLE_BAD_DOWNLOAD_RESUME:
            return .rangeNotSupported
        default:
            return .curl(code: Int(code.rawValue), message: message)
        }
    }
}

/// Formats seconds for messages: `2 s`, `1.5 s`, `250 ms`.
func formatSeconds(_ seconds: Double) -> String {
    if seconds < 1 { return "\(Int((seconds * 1000).rounded())) ms" }
    if seconds == seconds.rounded() { return "\(Int(seconds)) s" }
    return "\((seconds * 10).rounded() / 10) s"
}
