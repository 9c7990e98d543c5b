/* libFuzzer target for the first-bytes classifier and the ClientHello parser
 * (src/lib/tls/clienthello.c), fed the bytes a hostile guest would send.
 *
 * The input is parsed whole, then fed again split at two data-derived points
 * and byte by byte over its first part; the status, bytes consumed and result
 * must agree. The classifier must be monotonic over prefixes, and every result
 * field must respect its documented bounds. Any disagreement traps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tls/clienthello.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(const struct clienthello *ch, size_t size)
{
    size_t len = strnlen(ch->sni, sizeof(ch->sni));
    CHECK(len < sizeof(ch->sni));
    CHECK(!(ch->has_sni && ch->sni_is_ip));
    if (ch->has_sni) {
        CHECK(tls_name_classify(ch->sni, len) == TLS_NAME_DNS);
        for (size_t i = 0; i < len; i++)
            CHECK(!(ch->sni[i] >= 'A' && ch->sni[i] <= 'Z'));
    } else {
        CHECK(len == 0);
    }
    CHECK(ch->hello_len >= 4 && ch->hello_len <= CLIENTHELLO_MAX);
    CHECK(ch->records >= 1 && ch->records <= CLIENTHELLO_MAX_RECORDS);
    CHECK(ch->raw_len == ch->hello_len + 5 * ch->records);
    CHECK(ch->raw_len <= size && ch->raw_len <= CLIENTHELLO_RAW_MAX);
    CHECK(ch->max_version >= 0x0300 || ch->has_supported_versions);
    CHECK(!ch->alpn_http11 || ch->has_alpn);
    CHECK(ch->record_version >= 0x0301 && ch->record_version <= 0x0304);
}

static void check_classify(const uint8_t *data, size_t size)
{
    enum conn_class whole = conn_classify(data, size);
    enum conn_class prev = CONN_CLASS_NEED_MORE;
    size_t lim = size < 40 ? size : 40;
    for (size_t i = 0; i <= lim; i++) {
        enum conn_class c = conn_classify(data, i);
        if (prev != CONN_CLASS_NEED_MORE)
            CHECK(c == prev);
        prev = c;
    }
    if (prev != CONN_CLASS_NEED_MORE)
        CHECK(whole == prev);
    char hex[33];
    conn_first_bytes_hex(data, size, hex);
    CHECK(strlen(hex) == 2 * (size < 16 ? size : 16));
}

/* Feeds data in three pieces [0,a) [a,b) [b,size), the first byte by byte. */
static enum clienthello_status feed_split(const uint8_t *data, size_t size, size_t a, size_t b,
                                          struct clienthello *out, size_t *consumed)
{
    struct clienthello_parser *p = clienthello_parser_new(NULL);
    CHECK(p);
    enum clienthello_status st = CLIENTHELLO_NEED_MORE;
    size_t off = 0, used;
    for (; off < a && st == CLIENTHELLO_NEED_MORE; off += used) {
        st = clienthello_parser_feed(p, data + off, 1, &used);
        CHECK(used <= 1);
    }
    size_t ends[2] = {b, size};
    for (int i = 0; i < 2 && st == CLIENTHELLO_NEED_MORE; i++) {
        if (ends[i] < off)
            continue;
        st = clienthello_parser_feed(p, data + off, ends[i] - off, &used);
        CHECK(used <= ends[i] - off);
        CHECK(st != CLIENTHELLO_NEED_MORE || used == ends[i] - off);
        off += used;
    }
    if (st == CLIENTHELLO_OK) {
        *out = *clienthello_parser_result(p);
        CHECK(clienthello_parser_feed(p, data, size, &used) == CLIENTHELLO_OK && used == 0);
    } else if (st == CLIENTHELLO_ERROR) {
        CHECK(clienthello_parser_error(p)[0] != '\0');
    }
    *consumed = off;
    clienthello_parser_free(p);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_classify(data, size);
    if (size > 0 && size < 300)
        (void)tls_name_classify((const char *)data, size);
    struct clienthello sni;
    memset(&sni, 0, sizeof(sni));
    if (clienthello_parse_sni(data, size, &sni, NULL, 0) == 0)
        CHECK(strnlen(sni.sni, sizeof(sni.sni)) < sizeof(sni.sni));

    struct clienthello whole, split;
    char err[200];
    enum clienthello_status s1 = clienthello_parse(data, size, &whole, err, sizeof(err));
    if (s1 == CLIENTHELLO_OK)
        check_result(&whole, size);
    size_t a = size ? data[0] % (size + 1) : 0;
    size_t b = size > 1 ? a + data[1] * 7 % (size - a + 1) : size;
    size_t consumed;
    enum clienthello_status s2 = feed_split(data, size, a, b, &split, &consumed);
    CHECK(s1 == s2);
    if (s1 == CLIENTHELLO_OK) {
        CHECK(memcmp(&whole, &split, sizeof(whole)) == 0);
        CHECK(consumed == whole.raw_len);
    }
    return 0;
}
