import CCompression

/// Streaming decompression of a sync db: gzip, zstd, xz or bzip2, chosen by magic bytes, or none.
///
/// These are the formats repo-add writes. The libraries are the ones libcurl and the base system
/// already load, so reading a db adds no shared library to ipfs-xfer's start-up (libarchive
/// alone added about 1.5 ms to every call through libxml2 and ICU).
final class Decompressor {
    /// Why the stream could not be decompressed.
    struct Failure: Error {
        var message: String
    }

    private enum Codec {
        case gzip(UnsafeMutablePointer<z_stream>)
        case zstd(OpaquePointer)
        case xz(UnsafeMutablePointer<lzma_stream>)
        case bzip2(UnsafeMutablePointer<bz_stream>)
        case none
    }

    private let codec: Codec
    private var output = [UInt8](repeating: 0, count: 256 * 1024)
    private var complete = false

    /// Picks the codec from the first bytes of the stream.
    init(magic: some Collection<UInt8>) throws(Failure) {
        let head = Array(magic.prefix(6))
        if head.starts(with: [0x1F, 0x8B]) {
            let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard ccompression_inflate_init(stream) == Z_OK else { throw Failure(message: "zlib init failed") }
            codec = .gzip(stream)
        } else if head.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) {
            guard let stream = ZSTD_createDStream() else { throw Failure(message: "zstd init failed") }
            codec = .zstd(stream)
        } else if head.starts(with: [0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00]) {
            let stream = UnsafeMutablePointer<lzma_stream>.allocate(capacity: 1)
            stream.initialize(to: ccompression_lzma_stream())
            guard lzma_stream_decoder(stream, UInt64.max, 0x08 /* LZMA_CONCATENATED */) == LZMA_OK else {
                throw Failure(message: "xz init failed")
            }
            codec = .xz(stream)
        } else if head.starts(with: [0x42, 0x5A, 0x68]) {
            let stream = UnsafeMutablePointer<bz_stream>.allocate(capacity: 1)
            stream.initialize(to: bz_stream())
            guard BZ2_bzDecompressInit(stream, 0, 0) == BZ_OK else { throw Failure(message: "bzip2 init failed") }
            codec = .bzip2(stream)
        } else {
            codec = .none
        }
    }

    deinit {
        switch codec {
        case .gzip(let stream):
            inflateEnd(stream)
            stream.deallocate()
        case .zstd(let stream):
            ZSTD_freeDStream(stream)
        case .xz(let stream):
            lzma_end(stream)
            stream.deallocate()
        case .bzip2(let stream):
            BZ2_bzDecompressEnd(stream)
            stream.deallocate()
        case .none:
            break
        }
    }

    /// True once the compressed stream has ended properly (always true without compression).
    var isComplete: Bool {
        if case .none = codec { return true }
        return complete
    }

    /// Decompresses `input`, handing each piece of output to `sink`.
    func feed(_ input: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !input.isEmpty else { return }
        let capacity = output.count
        try output.withUnsafeMutableBytes { out in
            let outBase = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            switch codec {
            case .none:
                try sink(input)
            case .gzip(let stream):
                stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                stream.pointee.avail_in = UInt32(input.count)
                while stream.pointee.avail_in > 0 && !complete {
                    stream.pointee.next_out = outBase
                    stream.pointee.avail_out = UInt32(capacity)
                    let status = inflate(stream, Z_NO_FLUSH)
                    guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
                        throw Failure(message: "corrupt gzip stream")
                    }
                    try sink(UnsafeRawBufferPointer(start: outBase, count: capacity - Int(stream.pointee.avail_out)))
                    if status == Z_STREAM_END { complete = true }
                }
            case .zstd(let stream):
                var inBuffer = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
                while inBuffer.pos < inBuffer.size {
                    var outBuffer = ZSTD_outBuffer(dst: outBase, size: capacity, pos: 0)
                    let status = ZSTD_decompressStream(stream, &outBuffer, &inBuffer)
                    guard ZSTD_isError(status) == 0 else { throw Failure(message: "corrupt zstd stream") }
                    complete = status == 0
                    try sink(UnsafeRawBufferPointer(start: outBase, count: outBuffer.pos))
                }
            case .xz(let stream):
                stream.pointee.next_in = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
                stream.pointee.avail_in = input.count
                while stream.pointee.avail_in > 0 && !complete {
                    stream.pointee.next_out = outBase
                    stream.pointee.avail_out = capacity
                    let status = lzma_code(stream, LZMA_RUN)
                    guard status == LZMA_OK || status == LZMA_STREAM_END else { throw Failure(message: "corrupt xz stream") }
                    try sink(UnsafeRawBufferPointer(start: outBase, count: capacity - stream.pointee.avail_out))
                    if status == LZMA_STREAM_END { complete = true }
                }
            case .bzip2(let stream):
                stream.pointee.next_in = UnsafeMutablePointer(
                    mutating: input.baseAddress!.assumingMemoryBound(to: CChar.self))
                stream.pointee.avail_in = UInt32(input.count)
                while stream.pointee.avail_in > 0 && !complete {
                    stream.pointee.next_out = UnsafeMutableRawPointer(outBase).assumingMemoryBound(to: CChar.self)
                    stream.pointee.avail_out = UInt32(capacity)
                    let status = BZ2_bzDecompress(stream)
                    guard status == BZ_OK || status == BZ_STREAM_END else { throw Failure(message: "corrupt bzip2 stream") }
                    try sink(UnsafeRawBufferPointer(start: outBase, count: capacity - Int(stream.pointee.avail_out)))
                    if status == BZ_STREAM_END { complete = true }
                }
            }
        }
    }

    /// For xz, which needs LZMA_FINISH to report the end of a stream that ends exactly here.
    func finish(into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard case .xz(let stream) = codec, !complete else { return }
        try output.withUnsafeMutableBytes { out in
            let outBase = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
            while !complete {
                stream.pointee.next_out = outBase
                stream.pointee.avail_out = out.count
                let status = lzma_code(stream, LZMA_FINISH)
                guard status == LZMA_OK || status == LZMA_STREAM_END else { throw Failure(message: "truncated xz stream") }
                try sink(UnsafeRawBufferPointer(start: outBase, count: out.count - stream.pointee.avail_out))
                if status == LZMA_STREAM_END { complete = true }
                if status == LZMA_OK && stream.pointee.avail_out == out.count { break }
            }
        }
    }
}
