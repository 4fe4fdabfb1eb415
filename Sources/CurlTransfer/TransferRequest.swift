/// One transfer for ``CurlMulti`` to run: where from, and how patient to be.
public struct TransferRequest: Sendable {
    /// The URL; any scheme libcurl speaks (http, https, file, ftp).
    public var url: String
    /// Resume from this byte offset (a checked Range for HTTP); 0 starts at the beginning.
    public var resumeFrom: Int64
    /// How long connecting may take, in seconds.
    public var connectTimeout: Double
    /// A transfer that moves no byte for this many seconds is aborted as stalled.
    public var stallTimeout: Double
    /// Extra request headers, as `Name: value` lines.
    public var headers: [String]
    /// The User-Agent header; libcurl sends none when nil.
    public var userAgent: String?
    /// A body to POST (an empty one for kubo's RPC, which takes POST only); nil for a GET.
    public var postBody: [UInt8]?
    /// A file to POST as the one part of a `multipart/form-data` body (kubo's `dag/import`).
    public var multipartFile: MultipartFile?

    /// Creates a request with pacman's own patience: 10 s to connect, 10 s without progress.
    public init(
        url: String,
        resumeFrom: Int64 = 0,
        connectTimeout: Double = 10,
        stallTimeout: Double = 10,
        headers: [String] = [],
        userAgent: String? = nil,
        postBody: [UInt8]? = nil,
        multipartFile: MultipartFile? = nil
    ) {
        self.url = url
        self.resumeFrom = resumeFrom
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.headers = headers
        self.userAgent = userAgent
        self.postBody = postBody
        self.multipartFile = multipartFile
    }
}

/// A file sent as a `multipart/form-data` part: read from disk, or from a stream while it is sent.
public struct MultipartFile: Sendable, Equatable {
    /// Where the part's bytes come from.
    public enum Source: Sendable, Equatable {
        /// A file on disk.
        case path(String)
        /// The read end of a pipe or socket, read (without blocking) until its writer closes it;
        /// the length is unknown, so the body goes out chunked. The caller owns the descriptor
        /// and closes it once the transfer has ended.
        case stream(fd: Int32)
    }

    /// The form field's name.
    public var field: String
    public var source: Source
    /// The file name the part announces.
    public var fileName: String
    public var contentType: String

    public init(field: String, source: Source, fileName: String, contentType: String) {
        self.field = field
        self.source = source
        self.fileName = fileName
        self.contentType = contentType
    }
}

/// What a finished transfer reports.
public struct TransferResponse: Sendable, Equatable {
    /// The protocol's response code (HTTP status, FTP reply; 0 for file://).
    public var status: Int
    /// Body bytes handed to the receiver.
    public var bytesReceived: Int64
}

/// The head of a response, given to the receiver before the first body byte.
public struct TransferHead: Sendable, Equatable {
    /// The protocol's response code (HTTP status, FTP reply; 0 for file://).
    public var status: Int
    /// The announced body length, when the server gave one (the remainder, for a resumed transfer).
    public var contentLength: Int64?
    /// The `Content-Type` header, when the server sent one.
    public var contentType: String?

    public init(status: Int, contentLength: Int64?, contentType: String? = nil) {
        self.status = status
        self.contentLength = contentLength
        self.contentType = contentType
    }
}

/// Where a transfer's body goes; called on the transfer thread, one call at a time.
///
/// Throwing from either method aborts the transfer, and ``CurlMulti/perform(_:into:)`` rethrows
/// that error.
public protocol TransferReceiver: AnyObject, Sendable {
    /// Called once, before the first body byte (or at the end, for an empty body).
    func begin(_ head: TransferHead) throws
    /// Called with each piece of the body, in order.
    func receive(_ chunk: UnsafeRawBufferPointer) throws
}
