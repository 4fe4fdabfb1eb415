#ifndef CCURLSHIM_H
#define CCURLSHIM_H

/// Typed, non-variadic wrappers around libcurl's variadic setopt/getinfo calls, which Swift
/// cannot call directly, and the few macros Swift does not import.

#include <curl/curl.h>

CURLcode ccurl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_easy_setopt_write_function(CURL *handle, curl_write_callback callback);
CURLcode ccurl_easy_setopt_header_function(CURL *handle, curl_write_callback callback);
CURLcode ccurl_easy_setopt_xferinfo_function(CURL *handle, curl_xferinfo_callback callback);

CURLcode ccurl_easy_getinfo_long(CURL *handle, CURLINFO info, long *out);
CURLcode ccurl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *out);
CURLcode ccurl_easy_getinfo_string(CURL *handle, CURLINFO info, char **out);
CURLcode ccurl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **out);

CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/// `CURL_GLOBAL_DEFAULT`, a macro of macros that Swift does not import.
long ccurl_global_default(void);

/// `curl_easy_pause(handle, CURLPAUSE_CONT)`: `CURLPAUSE_CONT` is a macro of macros.
CURLcode ccurl_easy_unpause(CURL *handle);

/// A read callback's `CURL_READFUNC_PAUSE` and `CURL_READFUNC_ABORT`, as `size_t`.
size_t ccurl_readfunc_pause(void);
size_t ccurl_readfunc_abort(void);


#endif
