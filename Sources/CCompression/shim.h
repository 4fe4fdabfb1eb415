#include <zlib.h>
#include <zstd.h>
#include <lzma.h>
#include <bzlib.h>

/// zlib's inflateInit2 is a macro; Swift needs a function.
static inline int ccompression_inflate_init(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);  /* gzip or zlib header, detected */
}

/// LZMA_STREAM_INIT is a macro of a compound literal.
static inline lzma_stream ccompression_lzma_stream(void) {
    lzma_stream stream = LZMA_STREAM_INIT;
    return stream;
}
