/* First-bytes classifier and ClientHello parser (src/lib/tls/clienthello.h):
 * real hellos captured from the OpenSSL client in-process, split at every
 * byte; every length field off by one; truncated extensions; limits at and one
 * past; synthetic hellos for the SNI/ALPN/supported_versions rules. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "tap.h"
#include "tls/clienthello.h"

/* ---- byte builder ---- */

struct bytes {
    uint8_t d[80000];
    size_t n;
};

static void put(struct bytes *b, const void *p, size_t n)
{
    if (b->n + n > sizeof(b->d))
        abort();
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void put8(struct bytes *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    put(b, &x, 1);
}
static void put16(struct bytes *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v & 0xff);
}
static void put24(struct bytes *b, size_t v)
{
    put8(b, (unsigned)(v >> 16) & 0xff);
    put16(b, (unsigned)(v & 0xffff));
}

/* Extension list being built; ext(...) appends type + length + data. */
static void ext(struct bytes *exts, unsigned type, const void *data, size_t n)
{
    put16(exts, type);
    put16(exts, (unsigned)n);
    put(exts, data, n);
}

static void ext_sni(struct bytes *exts, const char *name, size_t n)
{
    struct bytes b = {.n = 0};
    put16(&b, (unsigned)(n + 3));
    put8(&b, 0);
    put16(&b, (unsigned)n);
    put(&b, name, n);
    ext(exts, 0, b.d, b.n);
}

/* protos: NUL-separated list ending with an empty string. */
static void ext_alpn(struct bytes *exts, const char *const *protos)
{
    struct bytes list = {.n = 0}, b = {.n = 0};
    for (size_t i = 0; protos[i]; i++) {
        put8(&list, (unsigned)strlen(protos[i]));
        put(&list, protos[i], strlen(protos[i]));
    }
    put16(&b, (unsigned)list.n);
    put(&b, list.d, list.n);
    ext(exts, 16, b.d, b.n);
}

/* A hello body around the given extension block (NULL: no extensions). */
static void hello_msg(struct bytes *msg, const struct bytes *exts)
{
    struct bytes body = {.n = 0};
    static const uint8_t zero[32];
    put16(&body, 0x0303);
    put(&body, zero, 32);
    put8(&body, 0); /* session id */
    put16(&body, 4);
    put16(&body, 0x1301);
    put16(&body, 0x002f);
    put8(&body, 1);
    put8(&body, 0);
    if (exts) {
        put16(&body, (unsigned)exts->n);
        put(&body, exts->d, exts->n);
    }
    msg->n = 0;
    put8(msg, 1);
    put24(msg, body.n);
    put(msg, body.d, body.n);
}

/* Frames msg into records of at most chunk bytes. */
static void frame(struct bytes *out, const struct bytes *msg, size_t chunk, unsigned version)
{
    out->n = 0;
    for (size_t off = 0; off < msg->n; off += chunk) {
        size_t n = msg->n - off < chunk ? msg->n - off : chunk;
        put8(out, 22);
        put16(out, version);
        put16(out, (unsigned)n);
        put(out, msg->d + off, n);
    }
}

static enum clienthello_status parse_ext_list(const struct bytes *exts, struct clienthello *ch)
{
    static struct bytes msg, rec;
    hello_msg(&msg, exts);
    frame(&rec, &msg, 16384, 0x0301);
    return clienthello_parse(rec.d, rec.n, ch, NULL, 0);
}

/* ---- real hellos from the OpenSSL client ---- */

struct capture {
    const char *sni;
    const char *const *alpn;
    int max_version;
    size_t alpn_pad; /* extra ALPN bytes to inflate the hello */
};

static size_t capture_hello(const struct capture *c, uint8_t *out, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (c->max_version)
        SSL_CTX_set_max_proto_version(ctx, c->max_version);
    SSL *ssl = SSL_new(ctx);
    BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    if (c->sni)
        SSL_set_tlsext_host_name(ssl, c->sni);
    struct bytes *alpn = calloc(1, sizeof(*alpn));
    for (size_t i = 0; c->alpn && c->alpn[i]; i++) {
        put8(alpn, (unsigned)strlen(c->alpn[i]));
        put(alpn, c->alpn[i], strlen(c->alpn[i]));
    }
    for (size_t i = 0; i < c->alpn_pad / 201; i++) {
        char p[200];
        memset(p, 'a' + (int)(i % 26), sizeof(p));
        put8(alpn, sizeof(p));
        put(alpn, p, sizeof(p));
    }
    if (alpn->n)
        SSL_set_alpn_protos(ssl, alpn->d, (unsigned)alpn->n);
    free(alpn);
    SSL_connect(ssl);
    char *data = NULL;
    long n = BIO_get_mem_data(wbio, &data);
    size_t len = n > 0 && (size_t)n <= cap ? (size_t)n : 0;
    memcpy(out, data, len);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return len;
}

/* The offsets of the length fields the parser checks, in a single-record
 * hello. inner[i] = 1 for fields inside the handshake body. */
struct lenfield {
    size_t off, size;
    int inner;
};

static size_t rd(const uint8_t *p, size_t size)
{
    size_t v = 0;
    for (size_t i = 0; i < size; i++)
        v = v << 8 | p[i];
    return v;
}

static size_t find_lengths(const uint8_t *h, size_t n, struct lenfield *f, size_t max)
{
    size_t k = 0, p = 5 + 4 + 2 + 32;
#define ADD(o, s, in)                                                                              \
    do {                                                                                           \
        if (k < max)                                                                               \
            f[k++] = (struct lenfield){(o), (s), (in)};                                            \
    } while (0)
    ADD(3, 2, 0);
    ADD(6, 3, 0);
    ADD(p, 1, 1);
    p += 1 + h[p];
    ADD(p, 2, 1);
    p += 2 + rd(h + p, 2);
    ADD(p, 1, 1);
    p += 1 + h[p];
    ADD(p, 2, 1);
    p += 2;
    while (p + 4 <= n) {
        size_t type = rd(h + p, 2), len = rd(h + p + 2, 2), d = p + 4;
        ADD(p + 2, 2, 1);
        if (type == 0) {
            ADD(d, 2, 1);
            ADD(d + 3, 2, 1);
        } else if (type == 16) {
            ADD(d, 2, 1);
            for (size_t q = d + 2; q < d + len; q += 1 + h[q])
                ADD(q, 1, 1);
        } else if (type == 43) {
            ADD(d, 1, 1);
        }
        p = d + len;
    }
#undef ADD
    return k;
}

static void wr(uint8_t *p, size_t size, size_t v)
{
    for (size_t i = size; i-- > 0; v >>= 8)
        p[i] = (uint8_t)(v & 0xff);
}

/* Zero the random, session id and key_share contents so mutated parses do
 * not depend on random bytes. */
static void make_deterministic(uint8_t *h, size_t n)
{
    size_t p = 5 + 4 + 2;
    memset(h + p, 0, 32);
    p += 32;
    memset(h + p + 1, 0, h[p]);
    p += 1 + h[p];
    p += 2 + rd(h + p, 2);
    p += 1 + h[p];
    p += 2;
    while (p + 4 <= n) {
        size_t type = rd(h + p, 2), len = rd(h + p + 2, 2);
        if (type == 51 && p + 4 + len <= n)
            memset(h + p + 4, 0x11, len);
        p += 4 + len;
    }
}

static bool same_result(const struct clienthello *a, const struct clienthello *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* Whole, every two-way split, byte at a time, and every strict prefix. */
static void check_splits(const char *label, const uint8_t *h, size_t n,
                         const struct clienthello *want)
{
    int bad_split = 0, bad_prefix = 0, bad_used = 0;
    for (size_t cut = 0; cut <= n; cut++) {
        struct clienthello_parser *p = clienthello_parser_new(NULL);
        size_t u1 = 0, u2 = 0;
        enum clienthello_status s1 = clienthello_parser_feed(p, h, cut, &u1);
        if (cut < n && s1 != CLIENTHELLO_NEED_MORE)
            bad_prefix++;
        enum clienthello_status s2 = clienthello_parser_feed(p, h + u1, n - u1, &u2);
        if (s2 != CLIENTHELLO_OK || !same_result(clienthello_parser_result(p), want))
            bad_split++;
        if (u1 + u2 != n)
            bad_used++;
        clienthello_parser_free(p);
    }
    ok(bad_split == 0 && bad_prefix == 0 && bad_used == 0,
       "%s: split at each of %zu bytes gives the same result (bad %d/%d/%d)", label, n + 1,
       bad_split, bad_prefix, bad_used);
    struct clienthello_parser *p = clienthello_parser_new(NULL);
    enum clienthello_status st = CLIENTHELLO_NEED_MORE;
    size_t used, total = 0;
    for (size_t i = 0; i < n && st == CLIENTHELLO_NEED_MORE; i++) {
        st = clienthello_parser_feed(p, h + i, 1, &used);
        total += used;
    }
    ok(st == CLIENTHELLO_OK && total == n && same_result(clienthello_parser_result(p), want),
       "%s: byte at a time", label);
    clienthello_parser_free(p);
}

static void check_length_mutations(const char *label, const uint8_t *orig, size_t n)
{
    struct lenfield f[64];
    size_t k = find_lengths(orig, n, f, 64);
    static uint8_t h[40000];
    int bad = 0;
    for (size_t i = 0; i < k; i++) {
        for (int delta = -1; delta <= 1; delta += 2) {
            memcpy(h, orig, n);
            size_t v = rd(h + f[i].off, f[i].size);
            if (delta < 0 && v == 0)
                continue;
            wr(h + f[i].off, f[i].size, v + (size_t)(ssize_t)delta);
            struct clienthello ch;
            enum clienthello_status st = clienthello_parse(h, n, &ch, NULL, 0);
            if (!f[i].inner && st == CLIENTHELLO_NEED_MORE) {
                /* an outer length that waits for more: the next byte must be refused */
                h[n] = 0;
                if (clienthello_parse(h, n + 1, &ch, NULL, 0) != CLIENTHELLO_ERROR)
                    bad++, diag("%s: field at %zu %+d: %d", label, f[i].off, delta, st);
            } else if (st != CLIENTHELLO_ERROR) {
                bad++;
                diag("%s: field at %zu (size %zu) %+d gave %d", label, f[i].off, f[i].size, delta,
                     st);
            }
        }
    }
    ok(bad == 0 && k >= 10, "%s: each of %zu length fields off by one is rejected", label, k);
}

/* Cuts inside the extension block, with the outer lengths fixed up: only cuts
 * on an extension boundary stay valid. */
static void check_truncated_extensions(const char *label, const uint8_t *orig, size_t n)
{
    size_t p = 5 + 4 + 2 + 32;
    p += 1 + orig[p];
    p += 2 + rd(orig + p, 2);
    p += 1 + orig[p];
    size_t ext_start = p + 2;
    static uint8_t h[40000];
    int bad = 0, tried = 0;
    for (size_t cut = ext_start + 1; cut < n; cut++) {
        bool boundary = false;
        for (size_t q = ext_start; q <= cut; q += 4 + rd(orig + q + 2, 2))
            if (q == cut)
                boundary = true;
        memcpy(h, orig, cut);
        wr(h + 3, 2, cut - 5);
        wr(h + 6, 3, cut - 9);
        wr(h + ext_start - 2, 2, cut - ext_start);
        struct clienthello ch;
        enum clienthello_status st = clienthello_parse(h, cut, &ch, NULL, 0);
        tried++;
        if (st != (boundary ? CLIENTHELLO_OK : CLIENTHELLO_ERROR)) {
            bad++;
            diag("%s: cut at %zu (boundary %d) gave %d", label, cut, boundary, st);
        }
    }
    ok(bad == 0 && tried > 50, "%s: %d truncations inside extensions", label, tried);
}

static const char *const h2h1[] = {"h2", "http/1.1", NULL};
static const char *const h2only[] = {"h2", NULL};

static void test_real_tls13(void)
{
    static uint8_t h[40000];
    struct clienthello ch;
    char err[200];

    struct capture a = {.sni = "api.anthropic.com", .alpn = h2h1};
    size_t n = capture_hello(&a, h, sizeof(h));
    ok(n > 200, "captured a TLS 1.3 hello (%zu bytes)", n);
    is_int(conn_classify(h, n), CONN_CLASS_TLS, "classified as TLS");
    is_int(clienthello_parse(h, n, &ch, err, sizeof(err)), CLIENTHELLO_OK, "parses");
    ok(ch.has_sni && !ch.sni_is_ip, "has SNI");
    is_str(ch.sni, "api.anthropic.com", "SNI name");
    ok(ch.has_alpn && ch.alpn_h2 && ch.alpn_http11 && ch.alpn_count == 2, "ALPN h2 + http/1.1");
    ok(ch.has_supported_versions && ch.offers_tls13, "supported_versions has TLS 1.3");
    is_int(ch.max_version, 0x0304, "max version 1.3");
    is_int(ch.legacy_version, 0x0303, "legacy version");
    is_int(ch.record_version, 0x0301, "record version");
    ok(ch.records == 1 && ch.raw_len == n && ch.hello_len == n - 5, "sizes");
    ok(ch.cipher_suites > 3 && ch.extensions > 5, "counts (%u suites, %u extensions)",
       ch.cipher_suites, ch.extensions);
    check_splits("tls13", h, n, &ch);

    /* Bytes after the hello (a ChangeCipherSpec) are left unconsumed. */
    static const uint8_t ccs[] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01};
    memcpy(h + n, ccs, sizeof(ccs));
    struct clienthello_parser *p = clienthello_parser_new(NULL);
    size_t used;
    ok(clienthello_parser_feed(p, h, n + sizeof(ccs), &used) == CLIENTHELLO_OK && used == n,
       "bytes past the hello are not consumed");
    ok(clienthello_parser_feed(p, h, 3, &used) == CLIENTHELLO_OK && used == 0,
       "after OK, feed returns OK and consumes nothing");
    clienthello_parser_free(p);
}

/* Length mutations, truncations and re-framing of a real TLS 1.3 hello. */
static void test_real_tls13_damaged(void)
{
    static uint8_t h[40000];
    struct clienthello ch;
    struct capture a = {.sni = "api.anthropic.com", .alpn = h2h1};
    size_t n = capture_hello(&a, h, sizeof(h));
    make_deterministic(h, n);
    is_int(clienthello_parse(h, n, &ch, NULL, 0), CLIENTHELLO_OK, "deterministic copy parses");
    check_length_mutations("tls13", h, n);
    check_truncated_extensions("tls13", h, n);

    /* Re-framed over several records. */
    static struct bytes msg, rec;
    msg.n = 0;
    put(&msg, h + 5, n - 5);
    struct clienthello one;
    clienthello_parse(h, n, &one, NULL, 0);
    frame(&rec, &msg, 100, 0x0303);
    is_int(clienthello_parse(rec.d, rec.n, &ch, NULL, 0), CLIENTHELLO_OK, "fragmented parses");
    ok(ch.records == (msg.n + 99) / 100 && ch.raw_len == rec.n && ch.record_version == 0x0303 &&
           strcmp(ch.sni, one.sni) == 0 && ch.hello_len == one.hello_len,
       "fragmented: %zu records", ch.records);
    check_splits("fragmented", rec.d, rec.n, &ch);
}

static void test_real_variants(void)
{
    static uint8_t h[40000];
    struct clienthello ch;
    char err[200];
    size_t n;

    struct capture b = {.max_version = TLS1_2_VERSION};
    n = capture_hello(&b, h, sizeof(h));
    is_int(clienthello_parse(h, n, &ch, err, sizeof(err)), CLIENTHELLO_OK, "TLS 1.2 hello parses");
    ok(!ch.has_sni && !ch.sni_is_ip && ch.sni[0] == '\0' && !ch.has_alpn, "no SNI, no ALPN");
    ok(!ch.has_supported_versions && ch.max_version == 0x0303, "TLS 1.2 only");
    check_splits("tls12", h, n, &ch);
    make_deterministic(h, n);
    check_length_mutations("tls12", h, n);
    check_truncated_extensions("tls12", h, n);

    struct capture c = {.sni = "WWW.Example.COM", .alpn = h2only};
    n = capture_hello(&c, h, sizeof(h));
    clienthello_parse(h, n, &ch, NULL, 0);
    is_str(ch.sni, "www.example.com", "SNI lowercased");
    ok(ch.alpn_h2 && !ch.alpn_http11 && ch.alpn_count == 1, "h2-only ALPN seen");

    struct capture d = {.sni = "10.0.0.5"};
    n = capture_hello(&d, h, sizeof(h));
    ok(clienthello_parse(h, n, &ch, NULL, 0) == CLIENTHELLO_OK && !ch.has_sni && ch.sni_is_ip &&
           ch.sni[0] == '\0',
       "IP literal in SNI counts as no SNI");

    struct capture e = {.sni = "api.anthropic.com", .alpn = h2h1, .alpn_pad = 10000};
    n = capture_hello(&e, h, sizeof(h));
    ok(clienthello_parse(h, n, &ch, NULL, 0) == CLIENTHELLO_OK && ch.hello_len > 10000,
       "10 KiB hello parses (%zu bytes)", n);
    struct capture f = {.sni = "api.anthropic.com", .alpn = h2h1, .alpn_pad = 20000};
    n = capture_hello(&f, h, sizeof(h));
    ok(n > 16384 + 5 && clienthello_parse(h, n, &ch, err, sizeof(err)) == CLIENTHELLO_ERROR,
       "20 KiB hello from OpenSSL is rejected (%zu bytes): %s", n, err);
}

/* ---- synthetic ---- */

static void test_limits(void)
{
    static struct bytes exts, msg, rec;
    struct clienthello ch;
    char err[200];
    /* Exactly CLIENTHELLO_MAX with one padding extension, then one more. */
    for (int extra = 0; extra <= 1; extra++) {
        exts.n = 0;
        ext_sni(&exts, "a.example", 9);
        hello_msg(&msg, &exts);
        size_t pad = CLIENTHELLO_MAX - msg.n - 4 + (size_t)extra;
        static uint8_t zeros[CLIENTHELLO_MAX];
        ext(&exts, 21, zeros, pad);
        hello_msg(&msg, &exts);
        frame(&rec, &msg, 16384, 0x0301);
        enum clienthello_status st = clienthello_parse(rec.d, rec.n, &ch, err, sizeof(err));
        if (!extra) {
            ok(msg.n == CLIENTHELLO_MAX && st == CLIENTHELLO_OK, "hello of exactly %d bytes",
               CLIENTHELLO_MAX);
        } else {
            ok(msg.n == CLIENTHELLO_MAX + 1 && st == CLIENTHELLO_ERROR,
               "hello of %d bytes rejected (%s)", CLIENTHELLO_MAX + 1, err);
            /* detected from the 4-byte header alone */
            ok(clienthello_parse(rec.d, 5 + 4, &ch, NULL, 0) == CLIENTHELLO_ERROR,
               "oversized hello rejected from its header");
        }
        frame(&rec, &msg, 6000, 0x0303);
        st = clienthello_parse(rec.d, rec.n, &ch, NULL, 0);
        ok(st == (extra ? CLIENTHELLO_ERROR : CLIENTHELLO_OK), "same over 3 records (%d)", extra);
    }
    /* Record count: 64 OK, 65 rejected. */
    exts.n = 0;
    ext_sni(&exts, "b.example", 9);
    hello_msg(&msg, &exts);
    static uint8_t zeros2[4096];
    ext(&exts, 21, zeros2, 64 * 20 - msg.n - 4);
    hello_msg(&msg, &exts);
    frame(&rec, &msg, 20, 0x0301);
    ok(clienthello_parse(rec.d, rec.n, &ch, NULL, 0) == CLIENTHELLO_OK && ch.records == 64,
       "64 records accepted");
    frame(&rec, &msg, 19, 0x0301);
    ok(clienthello_parse(rec.d, rec.n, &ch, NULL, 0) == CLIENTHELLO_ERROR, "65 records rejected");
}

static void test_record_headers(void)
{
    static struct bytes exts, msg, rec;
    struct clienthello ch;
    char err[200];
    exts.n = 0;
    ext_sni(&exts, "c.example", 9);
    hello_msg(&msg, &exts);
    static const unsigned versions[] = {0x0300, 0x0301, 0x0302, 0x0303, 0x0304, 0x0305, 0x0201};
    for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
        frame(&rec, &msg, 16384, versions[i]);
        bool good = versions[i] >= 0x0301 && versions[i] <= 0x0304;
        is_int(clienthello_parse(rec.d, rec.n, &ch, NULL, 0),
               good ? CLIENTHELLO_OK : CLIENTHELLO_ERROR, "record version 0x%04x", versions[i]);
    }
    frame(&rec, &msg, 16384, 0x0301);
    rec.d[0] = 23;
    is_int(clienthello_parse(rec.d, 5, &ch, NULL, 0), CLIENTHELLO_ERROR,
           "application data first record rejected from its header");
    rec.d[0] = 21;
    is_int(clienthello_parse(rec.d, 5, &ch, NULL, 0), CLIENTHELLO_ERROR, "alert first record");
    static const uint8_t big[] = {22, 3, 1, 0x40, 0x01};
    is_int(clienthello_parse(big, 5, &ch, NULL, 0), CLIENTHELLO_ERROR, "record length 16385");
    static const uint8_t maxrec[] = {22, 3, 1, 0x40, 0x00, 1};
    is_int(clienthello_parse(maxrec, 6, &ch, NULL, 0), CLIENTHELLO_NEED_MORE,
           "record length 16384 waits for more");
    static const uint8_t zero[] = {22, 3, 1, 0, 0};
    is_int(clienthello_parse(zero, 5, &ch, NULL, 0), CLIENTHELLO_ERROR, "zero-length record");
    frame(&rec, &msg, 16384, 0x0301);
    rec.d[5] = 2;
    is_int(clienthello_parse(rec.d, 6, &ch, NULL, 0), CLIENTHELLO_ERROR,
           "handshake type 2 rejected at once");
    /* Trailing handshake bytes in the hello's record. */
    frame(&rec, &msg, 16384, 0x0301);
    rec.d[4]++;
    rec.d[rec.n++] = 0;
    is_int(clienthello_parse(rec.d, rec.n, &ch, err, sizeof(err)), CLIENTHELLO_ERROR,
           "record longer than the hello (%s)", err);
    size_t alen;
    const uint8_t *alert = clienthello_decode_error_alert(&alen);
    static const uint8_t want[] = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32};
    is_mem(alert, alen, want, sizeof(want), "decode_error alert record");
}

static void check_sni(const char *name, size_t n, enum clienthello_status want, int has_sni,
                      const char *expect)
{
    static struct bytes exts;
    struct clienthello ch;
    exts.n = 0;
    ext_sni(&exts, name, n);
    enum clienthello_status st = parse_ext_list(&exts, &ch);
    bool pass = st == want;
    if (pass && st == CLIENTHELLO_OK)
        pass = ch.has_sni == has_sni && ch.sni_is_ip == (!has_sni) &&
               (!expect || strcmp(ch.sni, expect) == 0);
    ok(pass, "SNI \"%.40s%s\" (%zu bytes)", name, n > 40 ? "..." : "", n);
}

static void test_sni_rules(void)
{
    char name[300];
    check_sni("example.com", 11, CLIENTHELLO_OK, 1, "example.com");
    check_sni("xn--bcher-kva.example", 21, CLIENTHELLO_OK, 1, NULL);
    check_sni("a-b.c-d.e", 9, CLIENTHELLO_OK, 1, NULL);
    check_sni("foo_bar.com", 11, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("a..b", 4, CLIENTHELLO_ERROR, 0, NULL);
    check_sni(".a.b", 4, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("example.com.", 12, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("", 0, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("exa\0mple.com", 12, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("ex ample.com", 12, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("b\xc3\xbc" "cher.de", 9, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("127.1", 5, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("1.2.3.4.5", 9, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("10.1.2.3", 8, CLIENTHELLO_OK, 0, NULL);
    check_sni("::1", 3, CLIENTHELLO_OK, 0, NULL);
    check_sni("2001:db8::1", 11, CLIENTHELLO_OK, 0, NULL);
    check_sni("[::1]", 5, CLIENTHELLO_ERROR, 0, NULL);
    check_sni("1.example", 9, CLIENTHELLO_OK, 1, NULL);
    /* label 63 / 64 */
    memset(name, 'a', 64);
    memcpy(name + 64, ".com", 4);
    check_sni(name + 1, 67, CLIENTHELLO_OK, 1, NULL);
    check_sni(name, 68, CLIENTHELLO_ERROR, 0, NULL);
    /* total 253 / 254 */
    for (int i = 0; i < 300; i++)
        name[i] = (i % 50 == 49) ? '.' : 'x';
    check_sni(name, 253, CLIENTHELLO_OK, 1, NULL);
    check_sni(name, 254, CLIENTHELLO_ERROR, 0, NULL);

    static struct bytes exts, b;
    struct clienthello ch;
    /* two host_name entries; a non-host_name type; list length mismatch */
    b.n = 0;
    put16(&b, 2 * (3 + 5));
    for (int i = 0; i < 2; i++) {
        put8(&b, 0);
        put16(&b, 5);
        put(&b, "a.com", 5);
    }
    exts.n = 0;
    ext(&exts, 0, b.d, b.n);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "two server names rejected");
    b.n = 0;
    put16(&b, 8);
    put8(&b, 1);
    put16(&b, 5);
    put(&b, "a.com", 5);
    exts.n = 0;
    ext(&exts, 0, b.d, b.n);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "name type 1 rejected");
    exts.n = 0;
    ext(&exts, 0, "", 0);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "empty server_name extension rejected");
}

static void test_other_extensions(void)
{
    static struct bytes exts;
    struct clienthello ch;
    static const char *const h2[] = {"h2", NULL};
    static const char *const mix[] = {"spdy/3", "http/1.1", "h2", NULL};
    static const char *const empty_proto[] = {"http/1.1", "", NULL};

    exts.n = 0;
    ext_alpn(&exts, h2);
    ok(parse_ext_list(&exts, &ch) == CLIENTHELLO_OK && ch.has_alpn && ch.alpn_h2 &&
           !ch.alpn_http11 && ch.alpn_count == 1,
       "ALPN h2 only");
    exts.n = 0;
    ext_alpn(&exts, mix);
    ok(parse_ext_list(&exts, &ch) == CLIENTHELLO_OK && ch.alpn_h2 && ch.alpn_http11 &&
           ch.alpn_count == 3,
       "ALPN three protocols");
    exts.n = 0;
    ext_alpn(&exts, empty_proto);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "empty ALPN protocol rejected");
    exts.n = 0;
    ext(&exts, 16, "\x00\x00", 2);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "empty ALPN list rejected");
    exts.n = 0;
    ext(&exts, 16, "\x00\x03\x05h2", 5);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "ALPN name past its list rejected");

    exts.n = 0;
    ext(&exts, 43, "\x06\x7a\x7a\x03\x04\x03\x03", 7);
    ok(parse_ext_list(&exts, &ch) == CLIENTHELLO_OK && ch.offers_tls13 &&
           ch.max_version == 0x0304,
       "supported_versions with GREASE");
    exts.n = 0;
    ext(&exts, 43, "\x02\x03\x03", 3);
    ok(parse_ext_list(&exts, &ch) == CLIENTHELLO_OK && !ch.offers_tls13 &&
           ch.max_version == 0x0303,
       "supported_versions 1.2 only");
    exts.n = 0;
    ext(&exts, 43, "\x03\x03\x04\x03", 4);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "odd supported_versions rejected");
    exts.n = 0;
    ext(&exts, 43, "\x00", 1);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "empty supported_versions rejected");

    exts.n = 0;
    ext(&exts, 10, "\x00\x02\x00\x17", 4);
    ext(&exts, 10, "\x00\x02\x00\x17", 4);
    is_int(parse_ext_list(&exts, &ch), CLIENTHELLO_ERROR, "duplicate extension rejected");
    exts.n = 0;
    ok(parse_ext_list(&exts, &ch) == CLIENTHELLO_OK && ch.extensions == 0,
       "empty extension block");

    static struct bytes msg, rec;
    hello_msg(&msg, NULL);
    frame(&rec, &msg, 16384, 0x0301);
    ok(clienthello_parse(rec.d, rec.n, &ch, NULL, 0) == CLIENTHELLO_OK && !ch.has_sni,
       "hello without extensions");
    /* body field checks, on the no-extension hello: offsets are fixed */
    struct {
        size_t off;
        uint8_t val;
        const char *what;
    } bad[] = {
        {9, 0x02, "client_version 2.x"},
        {9 + 2 + 32, 33, "session_id of 33"},
        {9 + 2 + 32 + 1 + 1, 3, "odd cipher_suites length"},
        {9 + 2 + 32 + 1 + 1, 0, "empty cipher_suites"},
        {9 + 2 + 32 + 1 + 2 + 4, 0, "no compression method"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t save = rec.d[bad[i].off];
        rec.d[bad[i].off] = bad[i].val;
        is_int(clienthello_parse(rec.d, rec.n, &ch, NULL, 0), CLIENTHELLO_ERROR, "%s rejected",
               bad[i].what);
        rec.d[bad[i].off] = save;
    }
}

static void test_classify(void)
{
    struct {
        const char *in;
        size_t n;
        enum conn_class want;
    } cases[] = {
        {"", 0, CONN_CLASS_NEED_MORE},
        {"\x16", 1, CONN_CLASS_NEED_MORE},
        {"\x16\x03", 2, CONN_CLASS_TLS},
        {"\x16\x03\x01\x02\x00", 5, CONN_CLASS_TLS},
        {"\x16\x02", 2, CONN_CLASS_UNKNOWN},
        {"G", 1, CONN_CLASS_NEED_MORE},
        {"GET", 3, CONN_CLASS_NEED_MORE},
        {"GET ", 4, CONN_CLASS_HTTP},
        {"GET / HTTP/1.1\r\n", 16, CONN_CLASS_HTTP},
        {"POST /x", 7, CONN_CLASS_HTTP},
        {"M-SEARCH * HTTP/1.1", 19, CONN_CLASS_HTTP},
        {"PRI", 3, CONN_CLASS_NEED_MORE},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, CONN_CLASS_UNKNOWN},
        {"PRIX / HTTP/1.1", 15, CONN_CLASS_HTTP},
        {" GET", 4, CONN_CLASS_UNKNOWN},
        {"GE\tT ", 5, CONN_CLASS_UNKNOWN},
        {"\x80\x2e\x01\x03\x01", 5, CONN_CLASS_UNKNOWN}, /* SSLv2 hello */
        {"\x00\x01\x02", 3, CONN_CLASS_UNKNOWN},
        {"SSH-2.0-OpenSSH_9.2\r\n", 21, CONN_CLASS_UNKNOWN},
        {"GET\r\n", 5, CONN_CLASS_UNKNOWN},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF ", 33, CONN_CLASS_HTTP},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF", 32, CONN_CLASS_NEED_MORE},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG", 33, CONN_CLASS_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        is_int(conn_classify((const uint8_t *)cases[i].in, cases[i].n), cases[i].want,
               "classify case %zu", i);
    char hex[33];
    conn_first_bytes_hex((const uint8_t *)"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24, hex);
    is_str(hex, "505249202a20485454502f322e300d0a", "first 16 bytes in hex");
    conn_first_bytes_hex((const uint8_t *)"\x80\x2e", 2, hex);
    is_str(hex, "802e", "short input in hex");
}

static void test_names(void)
{
    is_int(tls_name_classify("example.com", 11), TLS_NAME_DNS, "DNS name");
    is_int(tls_name_classify("8.8.8.8", 7), TLS_NAME_IPV4, "IPv4");
    is_int(tls_name_classify("fe80::1", 7), TLS_NAME_IPV6, "IPv6");
    is_int(tls_name_classify("0x7f.1", 6), TLS_NAME_INVALID, "numeric tail");
    is_int(tls_name_classify("localhost", 9), TLS_NAME_DNS, "single label");
    is_int(tls_name_classify("a.b-", 4), TLS_NAME_DNS, "trailing hyphen tolerated");
}

int main(void)
{
    test_classify();
    test_names();
    test_real_tls13();
    test_real_tls13_damaged();
    test_real_variants();
    test_limits();
    test_record_headers();
    test_sni_rules();
    test_other_extensions();
    return done_testing();
}
