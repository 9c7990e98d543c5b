/* Credential checks on guest-controlled requests (network.md section 10):
 * the header scan, Basic/Bearer parsing and base64, percent-decoded
 * targets, the streaming body scan and the telemetry redaction.
 *
 * Input lines: the first is the host, the second the request target, the
 * rest "Name: value" header lines; the whole input is also fed to the body
 * scan and the redaction. Checks: no secret ever appears in the outcome's
 * detail or in a redacted text, and substitutions only happen toward the
 * provider's owner host. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "creds/creds.h"
#include "net/http1.h"

#define MAX_HEADERS 16

static const char *const secrets[CREDS_NPROV] = {
    "sk-ant-fuzz-0123456789abcdef", "sk-openai-fuzz-0123456789", "AIzaFuzzKey0123456789",
    "ghp_fuzz0123456789abcdef"};

static struct creds *creds;
static struct creds_vm vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_secret(const char *s, size_t n)
{
    for (int p = 0; p < CREDS_NPROV; p++)
        if (memmem(s, n, secrets[p], strlen(secrets[p])))
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!creds) {
        creds = creds_from_values(secrets, NULL);
        if (!creds || creds_vm_new(creds, &vm, NULL) < 0)
            abort();
    }
    if (size > 16384)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    /* Lines (a NUL inside ends that field early, as a C string would). */
    char *lines[2 + MAX_HEADERS];
    size_t nl = 0;
    for (char *s = text; nl < 2 + MAX_HEADERS;) {
        lines[nl++] = s;
        char *e = strchr(s, '\n');
        if (!e)
            break;
        *e = '\0';
        s = e + 1;
    }
    struct http1_header h[MAX_HEADERS];
    size_t nh = 0;
    for (size_t i = 2; i < nl; i++) {
        char *colon = strchr(lines[i], ':');
        if (!colon)
            continue;
        *colon = '\0';
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        h[nh++] = (struct http1_header){.name = lines[i], .value = v,
                                        .name_len = strlen(lines[i]), .value_len = strlen(v)};
    }
    const char *host = nl > 0 ? lines[0] : "";
    const char *target = nl > 1 ? lines[1] : "/";
    struct creds_outcome *o = calloc(1, sizeof(*o));
    if (o && creds_check_request(creds, &vm, host, h, nh, target, o, NULL) == 0) {
        if (has_secret(o->detail, strnlen(o->detail, sizeof(o->detail))))
            abort(); /* details are logged: never a secret */
        if (o->nsubst > 0 && (o->provider < 0 || creds_host_provider(host) != o->provider))
            abort(); /* substitution only toward the owner */
    }
    if (o)
        creds_outcome_wipe(o);
    free(o);
    for (size_t i = 0; i < nh; i++) {
        char red[256];
        int n = creds_redact_header(creds, (const uint8_t *)"0123456789abcdef0123456789abcdef",
                                    h[i].name, h[i].value, red, sizeof(red));
        if (n >= 0 && has_secret(red, (size_t)n))
            abort();
    }
    char out[512];
    size_t rn = creds_redact_text(creds, (const char *)data, size, out, sizeof(out));
    if (rn > sizeof(out) || has_secret(out, rn))
        abort();
    struct creds_body_scan *scan = creds_body_scan_new(creds);
    if (scan) {
        size_t step = size % 7 + 1;
        for (size_t off = 0; off < size; off += step)
            creds_body_scan_feed(scan, data + off, size - off < step ? size - off : step);
        creds_body_scan_free(scan);
    }
    free(text);
    return 0;
}
