#include "CLazyCompression.h"

#include <dlfcn.h>
#include <pthread.h>

/// liblzma's functions, found on the first call.
static pthread_once_t lzma_loaded = PTHREAD_ONCE_INIT;
static lzma_ret (*real_lzma_stream_decoder)(lzma_stream *, uint64_t, uint32_t);
static lzma_ret (*real_lzma_code)(lzma_stream *, lzma_action);
static void (*real_lzma_end)(lzma_stream *);

static void load_lzma(void) {
    void *library = dlopen("liblzma.so.5", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return;
    lzma_ret (*decoder)(lzma_stream *, uint64_t, uint32_t) = dlsym(library, "lzma_stream_decoder");
    lzma_ret (*code)(lzma_stream *, lzma_action) = dlsym(library, "lzma_code");
    void (*end)(lzma_stream *) = dlsym(library, "lzma_end");
    if (decoder == NULL || code == NULL || end == NULL) return;
    real_lzma_stream_decoder = decoder;
    real_lzma_code = code;
    real_lzma_end = end;
}

lzma_ret lzma_stream_decoder(lzma_stream *strm, uint64_t memlimit, uint32_t flags) {
    pthread_once(&lzma_loaded, load_lzma);
    return real_lzma_stream_decoder != NULL ? real_lzma_stream_decoder(strm, memlimit, flags) : LZMA_MEM_ERROR;
}

lzma_ret lzma_code(lzma_stream *strm, lzma_action action) {
    pthread_once(&lzma_loaded, load_lzma);
    return real_lzma_code != NULL ? real_lzma_code(strm, action) : LZMA_PROG_ERROR;
}

void lzma_end(lzma_stream *strm) {
    pthread_once(&lzma_loaded, load_lzma);
    if (real_lzma_end != NULL) real_lzma_end(strm);
}

/// libbzip2's functions, found on the first call.
static pthread_once_t bz2_loaded = PTHREAD_ONCE_INIT;
static int (*real_bz_init)(bz_stream *, int, int);
static int (*real_bz_decompress)(bz_stream *);
static int (*real_bz_end)(bz_stream *);

static void load_bz2(void) {
    void *library = dlopen("libbz2.so.1.0", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) library = dlopen("libbz2.so.1", RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return;
    int (*init)(bz_stream *, int, int) = dlsym(library, "BZ2_bzDecompressInit");
    int (*decompress)(bz_stream *) = dlsym(library, "BZ2_bzDecompress");
    int (*end)(bz_stream *) = dlsym(library, "BZ2_bzDecompressEnd");
    if (init == NULL || decompress == NULL || end == NULL) return;
    real_bz_init = init;
    real_bz_decompress = decompress;
    real_bz_end = end;
}

int BZ2_bzDecompressInit(bz_stream *strm, int verbosity, int small) {
    pthread_once(&bz2_loaded, load_bz2);
    return real_bz_init != NULL ? real_bz_init(strm, verbosity, small) : BZ_CONFIG_ERROR;
}

int BZ2_bzDecompress(bz_stream *strm) {
    pthread_once(&bz2_loaded, load_bz2);
    return real_bz_decompress != NULL ? real_bz_decompress(strm) : BZ_CONFIG_ERROR;
}

int BZ2_bzDecompressEnd(bz_stream *strm) {
    pthread_once(&bz2_loaded, load_bz2);
    return real_bz_end != NULL ? real_bz_end(strm) : BZ_CONFIG_ERROR;
}
