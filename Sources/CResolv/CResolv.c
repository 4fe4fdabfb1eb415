#include "CResolv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

int xfer_txt_query(const char *name, const char *server, int port, int timeout_seconds,
                   unsigned char *answer, int answer_size) {
    struct __res_state state;
    memset(&state, 0, sizeof state);
    if (res_ninit(&state) != 0) return -1;
    state.retrans = timeout_seconds > 0 ? timeout_seconds : 1;
    state.retry = 1;
    if (server != NULL) {
        struct sockaddr_in v4;
        memset(&v4, 0, sizeof v4);
        if (inet_pton(AF_INET, server, &v4.sin_addr) != 1) {
            res_nclose(&state);
            return -1;
        }
        v4.sin_family = AF_INET;
        v4.sin_port = htons((unsigned short)port);
        state.nsaddr_list[0] = v4;
        state.nscount = 1;
    }
    int length = res_nquery(&state, name, ns_c_in, ns_t_txt, answer, answer_size);
    if (length < 0 && (state.res_h_errno == HOST_NOT_FOUND || state.res_h_errno == NO_DATA)) {
        // res_nquery hides NXDOMAIN and NODATA behind -1; say "no records" with an empty answer.
        HEADER *header = (HEADER *)answer;
        memset(answer, 0, answer_size < (int)sizeof(HEADER) ? (size_t)answer_size : sizeof(HEADER));
        if (answer_size >= (int)sizeof(HEADER)) {
            header->qr = 1;
            header->rcode = ns_r_nxdomain;
            length = (int)sizeof(HEADER);
        }
    }
    res_nclose(&state);
    return length;
}

int xfer_txt_make_query(const char *name, unsigned char *buffer, int buffer_size) {
    struct __res_state state;
    memset(&state, 0, sizeof state);
    if (res_ninit(&state) != 0) return -1;
    int length = res_nmkquery(&state, ns_o_query, name, ns_c_in, ns_t_txt, NULL, 0, NULL, buffer, buffer_size);
    res_nclose(&state);
    if (length >= 2) {
        buffer[0] = 0;
        buffer[1] = 0;
    }
    return length;
}

int xfer_txt_records(const unsigned char *answer, int length, char *out, int out_size) {
    if (out_size < 1) return -1;
    out[0] = 0;
    if (length < (int)sizeof(HEADER)) return -1;
    const HEADER *header = (const HEADER *)answer;
    if (header->rcode == ns_r_nxdomain) return 0;
    if (header->rcode != ns_r_noerror) return -2;
    ns_msg message;
    if (ns_initparse(answer, length, &message) != 0) return -1;
    int records = 0;
    int used = 0;
    for (int index = 0; index < ns_msg_count(message, ns_s_an); index++) {
        ns_rr record;
        if (ns_parserr(&message, ns_s_an, index, &record) != 0) return -1;
        if (ns_rr_type(record) != ns_t_txt || ns_rr_class(record) != ns_c_in) continue;
        const unsigned char *data = ns_rr_rdata(record);
        int remaining = ns_rr_rdlen(record);
        while (remaining > 0) {
            int size = data[0];
            if (size + 1 > remaining) return -1;
            if (used + size + 2 > out_size) return -1;
            memcpy(out + used, data + 1, (size_t)size);
            used += size;
            data += size + 1;
            remaining -= size + 1;
        }
        out[used++] = '\n';
        out[used] = 0;
        records++;
    }
    return records;
}
