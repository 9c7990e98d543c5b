/* Credentials (network.md section 10, "Secrets never enter the guest"):
 * host-held API keys, per-VM placeholders, the request check and
 * substitution the MITM proxy runs after the policy allows a request, the
 * streaming body scan, and telemetry redaction (section 11). docs/credentials.md
 * describes the decisions.
 *
 * Ownership: a struct creds owns its secrets in one locked page (mlock, kept
 * out of core dumps); creds_free() zeroes and releases it. Every const char *
 * it returns is borrowed until creds_free(). A struct creds is read-only after
 * creation and may be shared between threads. Nothing here prints, and no
 * error message, detail or redacted value ever holds a secret.
 */
#ifndef CAPSEM_CREDS_H
#define CAPSEM_CREDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "net/http1.h"

enum creds_provider { CREDS_ANTHROPIC, CREDS_OPENAI, CREDS_GOOGLE, CREDS_GITHUB, CREDS_NPROV };

#define CREDS_FILE       "credentials.toml" /* in $CAPSEM_HOME */
#define CREDS_FILE_MAX   (64 * 1024)        /* bigger files are refused */
#define CREDS_SECRET_MIN 8   /* shorter values would match by chance in the leak check */
#define CREDS_SECRET_MAX 512 /* bytes; keeps every substituted header under 2 KiB */

/* "anthropic", "openai", "google", "github"; NULL for anything else. */
const char *creds_provider_name(enum creds_provider p);
/* The variable the guest sees the placeholder under: "ANTHROPIC_API_KEY",
 * "OPENAI_API_KEY", "GEMINI_API_KEY", "GH_TOKEN"; NULL for anything else. */
const char *creds_provider_env(enum creds_provider p);
/* Provider by name, or -1. */
int creds_provider_from_name(const char *name);
/* The provider owning host (section 10 table: api.anthropic.com,
 * api.openai.com, generativelanguage.googleapis.com, github.com,
 * api.github.com; ASCII case-insensitive, one trailing dot ignored), or -1. */
int creds_host_provider(const char *host);

/* Checks a secret value for provider p: CREDS_SECRET_MIN..MAX bytes of
 * visible ASCII except '"' and '\\' (it goes into HTTP headers and TOML
 * strings), and not placeholder-shaped. The message names the provider,
 * never the value. */
int creds_secret_check(enum creds_provider p, const char *value, struct err **errp);

/* ---- host-held secrets ---- */

struct creds;

/* Reads $home/credentials.toml:
 *     schema = 1
 *     [secrets]
 *     anthropic = "..."    (also openai, google, github; "..." or '...')
 * A missing file gives an empty set (no secrets). Refused: a symlink or
 * non-regular file, a file with any group/other permission bit (EACCES,
 * status 403, message with the chmod that fixes it), over CREDS_FILE_MAX,
 * bad syntax, unknown keys or tables, a schema other than 1, a value
 * creds_secret_check() rejects (status 400, "<path>:<line>: <reason>").
 * The file is read into locked memory and wiped after parsing. */
struct creds *creds_load(const char *home, struct err **errp);

/* A set built from values[p] (NULL or "" = none), each checked with
 * creds_secret_check(): for secrets that arrive over IPC. */
struct creds *creds_from_values(const char *const values[CREDS_NPROV], struct err **errp);

/* Zeroes the secrets (explicit_bzero), unlocks and frees. NULL is a no-op. */
void creds_free(struct creds *c);

/* The secret for p, NUL-terminated, or NULL when none (or c is NULL). */
const char *creds_secret(const struct creds *c, enum creds_provider p);

/* Rewrites $home/credentials.toml (temp + fsync + rename, mode 0600; home
 * created 0700 if missing) with values[p] for each provider: NULL keeps the
 * stored value, "" removes it, anything else must pass
 * creds_secret_check(). An existing file is loaded first with every
 * creds_load() check (a group-readable file is refused, not rewritten). */
int creds_save(const char *home, const char *const values[CREDS_NPROV], struct err **errp);

/* ---- per-VM placeholders ---- */

#define CREDS_PLACEHOLDER_PREFIX "capsem-placeholder-"
#define CREDS_PLACEHOLDER_RANDOM 26 /* chars of [a-z2-7]: 130 bits */
#define CREDS_PLACEHOLDER_MAX    64 /* longest is 55 chars + NUL */

/* "capsem-placeholder-<provider>-<26 chars of [a-z2-7]>" from getrandom(). */
int creds_placeholder_new(enum creds_provider p, char out[CREDS_PLACEHOLDER_MAX],
                          struct err **errp);
/* True when s is exactly a placeholder; *p (may be NULL) gets its provider. */
bool creds_placeholder_valid(const char *s, enum creds_provider *p);

/* One VM's placeholders; "" = none for that provider. */
struct creds_vm {
    char placeholder[CREDS_NPROV][CREDS_PLACEHOLDER_MAX];
};

/* Fills vm with a new placeholder for each provider c holds a secret for
 * (network.md: exported only for those), "" for the others. */
int creds_vm_new(const struct creds *c, struct creds_vm *vm, struct err **errp);

/* ---- request check and substitution (section 10 table) ---- */

enum creds_verdict { CREDS_OK = 0, CREDS_PLACEHOLDER_MISUSE, CREDS_SECRET_LEAK };

/* Section 7 reason code: "ok", "placeholder_misuse", "secret_leak". */
const char *creds_verdict_reason(enum creds_verdict v);

#define CREDS_MAX_SUBST 4
struct creds_outcome {
    enum creds_verdict verdict;
    char detail[160]; /* what and where, for the 403 body and error_detail; never a secret */
    int provider;     /* provider whose secret is substituted, -1 none */
    size_t nsubst;
    struct {
        char name[40];    /* field name as the guest sent it; match case-insensitively */
        char value[2048]; /* forwarded value, holds the secret */
    } subst[CREDS_MAX_SUBST];
    /* The forwarded request target when the `key` query parameter was
     * substituted (holds the secret), else "". */
    char target[8192];
};

/* Checks the guest-side request and computes the substitution. host:
 * lowercase, no port; h/nh: the request's fields (struct http1_header);
 * target: the request target as received.
 *
 * - This VM's placeholder for provider P, sent to one of P's owner hosts in a
 *   listed position, is substituted when c holds P's secret: x-api-key and
 *   "Authorization: Bearer" (anthropic), "Authorization: Bearer" (openai),
 *   x-goog-api-key and query parameter `key` (google), "Authorization:
 *   Bearer"/"token" and the password of "Authorization: Basic" (github). The
 *   whole credential must be the placeholder; the scheme keeps its case.
 * - Any other "capsem-placeholder-" (any case) in a field name or value, the
 *   raw or percent-decoded target, or decoded Basic credentials is
 *   CREDS_PLACEHOLDER_MISUSE: another VM's placeholder, a malformed one, or
 *   this VM's sent to a host that does not own its provider. This VM's
 *   placeholder sent to its owner host in another position passes unchanged.
 * - A host-held secret found verbatim in the same places toward a host that
 *   does not own its provider is CREDS_SECRET_LEAK (checked first).
 * - Two fields of a substituted name (e.g. two Authorization fields) are
 *   CREDS_PLACEHOLDER_MISUSE: which one upstream reads is not ours to guess.
 *
 * c and vm may be NULL (no secrets / no placeholders). Returns 0 with *out
 * filled (verdict CREDS_OK and nsubst 0: forward unchanged), or -1 (status
 * 400) when a substituted value would not fit its buffer. *out holds
 * secrets after a substitution: wipe it with creds_outcome_wipe(). */
int creds_check_request(const struct creds *c, const struct creds_vm *vm, const char *host,
                        const struct http1_header *h, size_t nh, const char *target,
                        struct creds_outcome *out, struct err **errp);

/* explicit_bzero of the whole outcome. */
void creds_outcome_wipe(struct creds_outcome *o);

/* ---- streaming body scan ---- */

/* For identity-encoded request bodies toward hosts creds_host_provider()
 * does not know (owner hosts receive agents' conversations, which may quote
 * placeholders). Hits: "capsem-placeholder-" in any case, or a host-held
 * secret verbatim, anywhere in the body, also across chunk boundaries: the
 * scan keeps the last max(64, longest pattern - 1) bytes of the previous
 * chunks. c is borrowed and must outlive the scan. NULL on allocation
 * failure (callers fail closed). */
struct creds_body_scan;
struct creds_body_scan *creds_body_scan_new(const struct creds *c);
/* Scans the next chunk (before it is sent upstream). True on a hit; once
 * true, every later call is true as well. */
bool creds_body_scan_feed(struct creds_body_scan *s, const void *p, size_t n);
/* CREDS_OK, CREDS_PLACEHOLDER_MISUSE or CREDS_SECRET_LEAK (the first hit). */
enum creds_verdict creds_body_scan_verdict(const struct creds_body_scan *s);
/* Wipes the kept bytes. NULL is a no-op. */
void creds_body_scan_free(struct creds_body_scan *s);

/* ---- telemetry redaction (sections 10 and 11) ---- */

#define CREDS_REDACT_MIN 64 /* smallest out buffer creds_redact_header() accepts */

/* One header value as telemetry stores it, NUL-terminated in out:
 * - verbatim-list fields (accept, content-type, content-length,
 *   content-encoding, transfer-encoding, host, user-agent, server, date,
 *   cache-control, location, retry-after, x-request-id, request-id): the
 *   value, any host-held secret in it replaced by "[secret:<provider>]",
 *   truncated to fit;
 * - authorization, proxy-authorization: "<scheme> placeholder:<provider>"
 *   when the credential (for Basic: the decoded password) is a placeholder,
 *   else "<scheme> hmac:<12 hex>" (HMAC-SHA256 of the credential under
 *   hmac_key, first 6 bytes); without a scheme, just the second part;
 * - any other field: "placeholder:<provider>" when the value is exactly a
 *   placeholder, else "hmac:<12 hex>" of the value. An empty value stays "".
 * Returns the length written, or -1 when cap < CREDS_REDACT_MIN. c may be
 * NULL (nothing to replace in verbatim values). */
int creds_redact_header(const struct creds *c, const uint8_t hmac_key[32], const char *name,
                        const char *value, char *out, size_t cap);

/* A body or text preview with every host-held secret and every placeholder
 * replaced by "[secret:<provider>]" ("[secret:unknown]" for a malformed
 * placeholder); a secret's prefix of >= CREDS_SECRET_MIN bytes at the very
 * end of the input (a preview cut inside it) is replaced too. Writes at most
 * cap - 1 bytes and a NUL (cap > 0), never part of a replacement token;
 * returns the length written. */
size_t creds_redact_text(const struct creds *c, const char *in, size_t n, char *out, size_t cap);

/* The per-install telemetry HMAC key, $home/ca/telemetry.key: 32 random
 * bytes, mode 0600 in the 0700 ca directory. Created if missing (linked
 * into place, so concurrent callers agree on one key); an existing key with
 * group/other permission bits or of the wrong size is refused. */
#define CREDS_HMAC_KEY_FILE "telemetry.key"
int creds_hmac_key(const char *home, uint8_t out[32], struct err **errp);

#endif
