import CCurl
import CCurlShim
import Glibc
import Synchronization

/// Runs any number of libcurl transfers at once on one dedicated thread, behind `async` calls.
///
/// Every easy handle lives and dies on the loop thread; callers only hand over a request and a
/// receiver and await the result. `curl_multi_wakeup` is the one libcurl call made from other
/// threads, and libcurl documents it as safe for that.
public final class CurlMulti: Sendable {
    /// The process-wide instance; its thread starts on first use and lives as long as the process.
    ///
    /// First use returns at once: libcurl's global set-up (OpenSSL's, which reads its config
    /// file) and the multi handle are made on the loop thread, overlapping with whatever the
    /// caller does before its first transfer, which the loop thread starts when it is ready.
    public static let shared = CurlMulti()

    /// Starts libcurl's set-up and the loop thread now, in the background (``shared``'s first use).
    public static func prepareInBackground() {
        _ = shared
    }

    /// The address of libcurl's multi handle, 0 until the loop thread has made it (stored under
    /// `inbox`'s lock). The handle is touched only by the loop thread, except `curl_multi_wakeup`.
    private let multiAddress = Atomic<UInt>(0)
    /// Work handed to the loop thread.
    private let inbox = Mutex<[Command]>([])

    private enum Command: Sendable {
        case start(ActiveTransfer)
        case cancel(ActiveTransfer)
    }

    private init() {
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { box in
            Unmanaged<CurlMulti>.fromOpaque(box!).takeRetainedValue().setUpAndRunLoop()
            return nil
        }, box)
        precondition(started == 0, "could not start the transfer thread: \(started)")
        pthread_detach(thread)
    }

    /// Runs one transfer to its end, feeding the body to `receiver`.
    ///
    /// Cancelling the calling task aborts the transfer promptly and throws ``TransferError/cancelled``.
    public func perform(_ request: TransferRequest, into receiver: any TransferReceiver) async throws -> TransferResponse {
        let transfer = ActiveTransfer(request: request, receiver: receiver)
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                transfer.continuation = continuation
                send(.start(transfer))
            }
        } onCancel: {
            transfer.cancelRequested.store(true, ordering: .relaxed)
            send(.cancel(transfer))
        }
    }

    /// Hands `command` to the loop thread; before its set-up is done there is nothing to wake, and
    /// the loop reads the inbox once the handle is stored.
    private func send(_ command: Command) {
        inbox.withLock { $0.append(command) }
        if let multi = UnsafeMutableRawPointer(bitPattern: multiAddress.load(ordering: .acquiring)) {
            curl_multi_wakeup(multi)
        }
    }

    /// The loop thread: libcurl's global set-up and the multi handle, then ``runLoop(_:)``.
    private func setUpAndRunLoop() {
        curl_global_init(ccurl_global_default())
        guard let handle = curl_multi_init() else { fatalError("curl_multi_init failed: out of memory") }
        // Under the inbox's lock: a command sent before sees no handle and is read by the loop's
        // first pass; one sent after finds the handle to wake.
        inbox.withLock { _ in multiAddress.store(UInt(bitPattern: handle), ordering: .releasing) }
        runLoop(handle)
    }

    /// The loop thread: start and cancel what was asked, drive libcurl, finish what is done.
    private func runLoop(_ multi: UnsafeMutableRawPointer) {
        // An array, searched by identity: a handful of transfers at most, and a dictionary's
        // first use would cost pacman's per-file call a conformance scan of the whole binary.
        var active: [ActiveTransfer] = []
        while true {
            for command in inbox.withLock({ inbox in defer { inbox.removeAll() }; return inbox }) {
                switch command {
                case .start(let transfer):
                    if transfer.cancelRequested.load(ordering: .relaxed) {
                        transfer.complete(.failure(TransferError.cancelled))
                    } else if let easy = transfer.makeHandle() {
                        active.append(transfer)
                        curl_multi_add_handle(multi, easy)
                    }
                case .cancel(let transfer):
                    if let index = active.firstIndex(where: { $0 === transfer }) {
                        let running = active.remove(at: index)
                        curl_multi_remove_handle(multi, running.easy)
                        running.complete(.failure(TransferError.cancelled))
                    }
                }
            }
            var running: Int32 = 0
            curl_multi_perform(multi, &running)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                var privatePointer: UnsafeMutableRawPointer?
                _ = ccurl_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &privatePointer)
                let transfer = Unmanaged<ActiveTransfer>.fromOpaque(privatePointer!).takeUnretainedValue()
                let code = message.pointee.data.result
                active.removeAll { $0 === transfer }
                curl_multi_remove_handle(multi, easy)
                transfer.finish(code: code)
            }
            pollAndResumeUploads(active, multi: multi)
        }
    }

    /// Waits for libcurl's sockets, and for the streams of uploads paused until their writer
    /// sends more; those whose stream became readable are resumed.
    private func pollAndResumeUploads(_ active: [ActiveTransfer], multi: UnsafeMutableRawPointer) {
        let paused = active.filter(\.uploadPaused)
        var waits = paused.map { curl_waitfd(fd: $0.uploadFD, events: Int16(CURL_WAIT_POLLIN), revents: 0) }
        curl_multi_poll(multi, &waits, UInt32(waits.count), 1000, nil)
        for (transfer, wait) in zip(paused, waits) where wait.revents != 0 {
            transfer.resumeUpload()
        }
    }
}

/// One transfer's state, owned by the loop thread once started.
private final class ActiveTransfer: @unchecked Sendable {
    let request: TransferRequest
    let receiver: any TransferReceiver
    /// Set by the caller's task on cancellation; read by the loop thread.
    let cancelRequested = Atomic<Bool>(false)
    /// Set before the transfer is handed over; resumed exactly once, on the loop thread, by
    /// ``complete(_:)``, which clears it. (A checked continuation's type would be instantiated at
    /// run time, with a conformance scan of the whole binary, in every one of pacman's calls.)
    var continuation: UnsafeContinuation<TransferResponse, any Error>?
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var mime: OpaquePointer?
    private var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    private var began = false
    private var bytesReceived: Int64 = 0
    private var receiverError: (any Error)?
    /// A streamed upload's descriptor (``MultipartFile/Source/stream(fd:)``), or -1.
    private(set) var uploadFD: Int32 = -1
    /// True while libcurl waits for the upload stream to become readable.
    private(set) var uploadPaused = false

    init(request: TransferRequest, receiver: any TransferReceiver) {
        self.request = request
        self.receiver = receiver
    }

    private var isHTTP: Bool {
        request.url.hasPrefix("http://") || request.url.hasPrefix("https://")
    }

    /// Creates and configures the easy handle, or completes with an error when libcurl cannot.
    func makeHandle() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else {
            complete(.failure(TransferError.curl(code: -1, message: "curl_easy_init failed")))
            return nil
        }
        self.easy = easy
        let me = Unmanaged.passUnretained(self).toOpaque()
        _ = ccurl_easy_setopt_string(easy, CURLOPT_URL, request.url)
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_PRIVATE, me)
        _ = ccurl_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, me)
        _ = ccurl_easy_setopt_write_function(easy) { data, size, count, userData in
            let transfer = Unmanaged<ActiveTransfer>.fromOpaque(userData!).takeUnretainedValue()
            return transfer.write(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
        }
        errorBuffer.withUnsafeMutableBufferPointer { buffer in
            _ = ccurl_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, buffer.baseAddress)
        }
        _ = ccurl_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_FAILONERROR, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_MAXREDIRS, 10)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, 512 * 1024)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(request.connectTimeout * 1000)))
        _ = ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = ccurl_easy_setopt_long(easy, CURLOPT_LOW_SPEED_TIME, max(1, Int(request.stallTimeout.rounded(.up))))
        if request.resumeFrom > 0 {
            _ = ccurl_easy_setopt_off_t(easy, CURLOPT_RESUME_FROM_LARGE, curl_off_t(request.resumeFrom))
        }
        if let userAgent = request.userAgent {
            _ = ccurl_easy_setopt_string(easy, CURLOPT_USERAGENT, userAgent)
        }
        if let upload = request.multipartFile {
            mime = curl_mime_init(easy)
            let part = curl_mime_addpart(mime)
            curl_mime_name(part, upload.field)
            switch upload.source {
            case .path(let path):
                curl_mime_filedata(part, path)
            case .stream(let fd):
                uploadFD = fd
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                curl_mime_data_cb(part, -1, { buffer, size, count, userData in
                    let transfer = Unmanaged<ActiveTransfer>.fromOpaque(userData!).takeUnretainedValue()
                    return transfer.readUpload(into: buffer!, count: size * count)
                }, nil, nil, me)
            }
            curl_mime_filename(part, upload.fileName)
            curl_mime_type(part, upload.contentType)
            _ = ccurl_easy_setopt_pointer(easy, CURLOPT_MIMEPOST, UnsafeMutableRawPointer(mime))
        }
        if let body = request.postBody {
            // COPYPOSTFIELDS copies the bytes, so the request need not outlive this call.
            _ = ccurl_easy_setopt_off_t(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
            body.withUnsafeBytes { bytes in
                _ = ccurl_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
        }
        for header in request.headers {
            headerList = curl_slist_append(headerList, header)
        }
        if let headerList {
            _ = ccurl_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, headerList)
        }
        return easy
    }

    /// The upload's read callback: what the stream has now, 0 at its end, or a pause until the
    /// loop sees it readable again.
    fileprivate func readUpload(into buffer: UnsafeMutablePointer<CChar>, count: Int) -> Int {
        while true {
            let got = read(uploadFD, buffer, count)
            if got >= 0 { return got }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK {
                uploadPaused = true
                return ccurl_readfunc_pause()
            }
            return ccurl_readfunc_abort()
        }
    }

    /// Lets libcurl read the upload stream again.
    fileprivate func resumeUpload() {
        uploadPaused = false
        _ = ccurl_easy_unpause(easy)
    }

    /// The write callback: check the head once, then pass the bytes on. False aborts the transfer.
    private func write(_ chunk: UnsafeRawBufferPointer) -> Bool {
        do {
            if !began { try begin() }
            try receiver.receive(chunk)
            bytesReceived += Int64(chunk.count)
            return true
        } catch {
            receiverError = error
            return false
        }
    }

    private func begin() throws {
        began = true
        let status = responseCode()
        if isHTTP && !(200..<300).contains(status) {
            throw TransferError.status(status)
        }
        var length: curl_off_t = -1
        _ = ccurl_easy_getinfo_off_t(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length)
        var type: UnsafeMutablePointer<CChar>?
        _ = ccurl_easy_getinfo_string(easy, CURLINFO_CONTENT_TYPE, &type)
        try receiver.begin(TransferHead(
            status: status, contentLength: length >= 0 ? Int64(length) : nil, contentType: type.map { String(cString: $0) }))
    }

    private func responseCode() -> Int {
        var status = 0
        _ = ccurl_easy_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
        return status
    }

    /// Completes the transfer from libcurl's result code.
    func finish(code: CURLcode) {
        if let receiverError {
            complete(.failure(receiverError))
            return
        }
        guard code == CURLE_OK else {
            let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            complete(.failure(TransferError.from(
                code: code, message: message, status: responseCode(), stallTimeout: request.stallTimeout)))
            return
        }
        do {
            if !began { try begin() }
            complete(.success(TransferResponse(status: responseCode(), bytesReceived: bytesReceived)))
        } catch {
            complete(.failure(error))
        }
    }

    /// Resumes the caller once and frees the libcurl resources.
    func complete(_ result: Result<TransferResponse, any Error>) {
        if let easy { curl_easy_cleanup(easy) }
        easy = nil
        curl_slist_free_all(headerList)
        headerList = nil
        curl_mime_free(mime)
        mime = nil
        continuation?.resume(with: result)
        continuation = nil
    }
}
