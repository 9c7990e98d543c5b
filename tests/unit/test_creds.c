/* Credentials (src/lib/creds/creds.h): credentials.toml modes, parsing and
 * round trips, placeholders, every row of the network.md section 10 table,
 * misuse and leak verdicts, the streaming body scan across chunk
 * boundaries, telemetry redaction and the per-install HMAC key. Everything
 * in a scratch directory. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/util.h"
#include "creds/creds.h"
#include "tap.h"

static char root[] = "/tmp/capsem-test-creds-XXXXXX";

/* Test secrets (fake, shaped like the real ones). */
#define SK_ANT                                                                                     \
    "sk-ant-api03-"                                                                                \
    "TESTabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghij-AAAA"
#define SK_OAI "sk-proj-TESTopenaiKEY0123456789"
#define SK_GOO "AIzaTESTgoogle+key/with=special"
#define SK_GH  "ghp_TESTgithubTOKEN0123456789abcdef"

static const char *const all_values[CREDS_NPROV] = {SK_ANT, SK_OAI, SK_GOO, SK_GH};

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p);
    return 0;
}

static char *path2(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", a, b) < 0)
        abort();
    return s;
}

static char *new_home(const char *name)
{
    char *h = path2(root, name);
    mkdir(h, 0700);
    return h;
}

static void write_mode(const char *path, const char *text, mode_t mode)
{
    if (file_write_atomic(path, text, strlen(text), mode, NULL) < 0)
        abort();
    chmod(path, mode);
}

static mode_t mode_of(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
}

/* ---------- providers ---------- */

static void test_providers(void)
{
    is_str(creds_provider_name(CREDS_ANTHROPIC), "anthropic", "name anthropic");
    is_str(creds_provider_name(CREDS_OPENAI), "openai", "name openai");
    is_str(creds_provider_name(CREDS_GOOGLE), "google", "name google");
    is_str(creds_provider_name(CREDS_GITHUB), "github", "name github");
    ok(creds_provider_name(CREDS_NPROV) == NULL, "no name past the end");
    is_str(creds_provider_env(CREDS_ANTHROPIC), "ANTHROPIC_API_KEY", "env anthropic");
    is_str(creds_provider_env(CREDS_OPENAI), "OPENAI_API_KEY", "env openai");
    is_str(creds_provider_env(CREDS_GOOGLE), "GEMINI_API_KEY", "env google");
    is_str(creds_provider_env(CREDS_GITHUB), "GH_TOKEN", "env github");
    is_int(creds_provider_from_name("github"), CREDS_GITHUB, "from name");
    is_int(creds_provider_from_name("GitHub"), -1, "names are exact");
    is_int(creds_host_provider("api.anthropic.com"), CREDS_ANTHROPIC, "owner anthropic");
    is_int(creds_host_provider("API.Anthropic.COM"), CREDS_ANTHROPIC, "owner, any case");
    is_int(creds_host_provider("api.anthropic.com."), CREDS_ANTHROPIC, "owner, trailing dot");
    is_int(creds_host_provider("api.openai.com"), CREDS_OPENAI, "owner openai");
    is_int(creds_host_provider("generativelanguage.googleapis.com"), CREDS_GOOGLE, "owner google");
    is_int(creds_host_provider("github.com"), CREDS_GITHUB, "owner github.com");
    is_int(creds_host_provider("api.github.com"), CREDS_GITHUB, "owner api.github.com");
    is_int(creds_host_provider("anthropic.com"), -1, "apex is not the owner");
    is_int(creds_host_provider("api.anthropic.com.evil.net"), -1, "suffix trick");
    is_int(creds_host_provider("xapi.github.com"), -1, "prefix trick");
    is_int(creds_host_provider("gist.github.com"), -1, "other github hosts are not owners");
    is_str(creds_verdict_reason(CREDS_PLACEHOLDER_MISUSE), "placeholder_misuse", "reason misuse");
    is_str(creds_verdict_reason(CREDS_SECRET_LEAK), "secret_leak", "reason leak");
}

static void test_secret_check(void)
{
    struct err *e = NULL;
    is_int(creds_secret_check(CREDS_OPENAI, SK_OAI, NULL), 0, "a real-looking key passes");
    ok(creds_secret_check(CREDS_OPENAI, "short", &e) < 0 && e->status == 400 &&
           strstr(err_msg(e), "openai secret must be 8 to 512"),
       "too short: %s", e ? err_msg(e) : "");
    err_free(e), e = NULL;
    ok(creds_secret_check(CREDS_GITHUB, "ghp_with space123", &e) < 0 &&
           strstr(err_msg(e), "character 9") && !strstr(err_msg(e), "ghp_with"),
       "space refused, value not echoed: %s", e ? err_msg(e) : "");
    err_free(e), e = NULL;
    ok(creds_secret_check(CREDS_GITHUB, "ghp_quote\"123", NULL) < 0, "quote refused");
    ok(creds_secret_check(CREDS_GITHUB, "ghp_back\\slash", NULL) < 0, "backslash refused");
    ok(creds_secret_check(CREDS_GITHUB, "ghp_newline\n123", NULL) < 0, "newline refused");
    char big[CREDS_SECRET_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ok(creds_secret_check(CREDS_GOOGLE, big, NULL) < 0, "513 bytes refused");
    big[CREDS_SECRET_MAX] = '\0';
    is_int(creds_secret_check(CREDS_GOOGLE, big, NULL), 0, "512 bytes pass");
    ok(creds_secret_check(CREDS_ANTHROPIC,
                          "capsem-placeholder-anthropic-aaaaaaaaaaaaaaaaaaaaaaaaaa", &e) < 0 &&
           strstr(err_msg(e), "placeholder"),
       "a placeholder is not a secret");
    err_free(e);
}

/* ---------- credentials.toml ---------- */

static void test_file_roundtrip(void)
{
    char *home = new_home("rt");
    char *file = path2(home, CREDS_FILE);
    struct err *e = NULL;
    struct creds *c = creds_load(home, &e);
    ok(c && !e, "missing file: an empty set");
    for (int p = 0; p < CREDS_NPROV; p++)
        ok(creds_secret(c, p) == NULL, "no %s secret", creds_provider_name(p));
    creds_free(c);

    is_int(creds_save(home, all_values, &e), 0, "save all four: %s", e ? err_msg(e) : "");
    is_int(mode_of(file), 0600, "credentials.toml is 0600");
    _cleanup_free_ char *text = NULL;
    ok(file_read_all(file, 1 << 16, &text, NULL, NULL) == 0 && strstr(text, "schema = 1\n") &&
           strstr(text, "\n[secrets]\n") && strstr(text, "anthropic = \"" SK_ANT "\"\n"),
       "file has schema, [secrets] and the values");
    c = creds_load(home, &e);
    ok(c != NULL, "load back");
    for (int p = 0; p < CREDS_NPROV; p++)
        is_str(creds_secret(c, p), all_values[p], "round trip %s", creds_provider_name(p));
    creds_free(c);

    const char *update[CREDS_NPROV] = {NULL, "", "AIzaNEWgoogleKEY123", NULL};
    is_int(creds_save(home, update, NULL), 0, "save: keep, remove, replace, keep");
    c = creds_load(home, NULL);
    is_str(creds_secret(c, CREDS_ANTHROPIC), SK_ANT, "NULL keeps anthropic");
    ok(creds_secret(c, CREDS_OPENAI) == NULL, "\"\" removes openai");
    is_str(creds_secret(c, CREDS_GOOGLE), "AIzaNEWgoogleKEY123", "google replaced");
    is_str(creds_secret(c, CREDS_GITHUB), SK_GH, "NULL keeps github");
    creds_free(c);

    const char *bad[CREDS_NPROV] = {NULL, "bad value with spaces", NULL, NULL};
    ok(creds_save(home, bad, &e) < 0 && e && strstr(err_msg(e), "openai"),
       "save refuses a bad value: %s", e ? err_msg(e) : "");
    err_free(e), e = NULL;
    c = creds_load(home, NULL);
    is_str(creds_secret(c, CREDS_GOOGLE), "AIzaNEWgoogleKEY123",
           "file unchanged by a refused save");
    creds_free(c);

    c = creds_from_values(all_values, &e);
    ok(c && creds_secret(c, CREDS_GITHUB) && strcmp(creds_secret(c, CREDS_GITHUB), SK_GH) == 0,
       "creds_from_values");
    creds_free(c);
    ok(!creds_from_values(bad, NULL), "creds_from_values checks values");

    char *sub = path2(home, "new/home");
    is_int(creds_save(sub, all_values, NULL), 0, "save creates the home directory");
    is_int(mode_of(sub), 0700, "created home is 0700");
    free(sub);
    free(file);
    free(home);
}

static void test_file_modes(void)
{
    char *home = new_home("modes");
    char *file = path2(home, CREDS_FILE);
    struct err *e = NULL;
    static const mode_t refused[] = {0640, 0604, 0620, 0602, 0644, 0660, 0610};
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        write_mode(file, "schema = 1\n[secrets]\nopenai = \"" SK_OAI "\"\n", refused[i]);
        struct creds *c = creds_load(home, &e);
        ok(!c && e && e->code == EACCES && e->status == 403 && strstr(err_msg(e), "chmod 600 ") &&
               strstr(err_msg(e), file) && !strstr(err_msg(e), SK_OAI),
           "mode %04o refused with a chmod hint: %s", (unsigned)refused[i], e ? err_msg(e) : "");
        err_free(e), e = NULL;
        creds_free(c);
    }
    ok(creds_save(home, all_values, &e) < 0 && e && e->code == EACCES,
       "save refuses to rewrite a group-readable file");
    err_free(e), e = NULL;
    is_int(mode_of(file), 0610, "the refused file was left alone");
    chmod(file, 0600);
    struct creds *c = creds_load(home, &e);
    ok(c && creds_secret(c, CREDS_OPENAI), "0600 loads");
    creds_free(c);
    chmod(file, 0400);
    c = creds_load(home, NULL);
    ok(c != NULL, "0400 loads");
    creds_free(c);

    unlink(file);
    char *real = path2(home, "real.toml");
    write_mode(real, "schema = 1\n", 0600);
    if (symlink(real, file) < 0)
        abort();
    c = creds_load(home, &e);
    ok(!c && e && strstr(err_msg(e), "symbolic link"), "a symlink is refused: %s",
       e ? err_msg(e) : "");
    err_free(e), e = NULL;
    unlink(file);
    mkdir(file, 0700);
    c = creds_load(home, &e);
    ok(!c && e && strstr(err_msg(e), "not a regular file"), "a directory is refused");
    err_free(e), e = NULL;
    rmdir(file);
    if (mkfifo(file, 0600) < 0)
        abort();
    c = creds_load(home, &e);
    ok(!c && e && strstr(err_msg(e), "not a regular file"), "a FIFO is refused without blocking");
    err_free(e), e = NULL;
    unlink(file);

    char *big = malloc(CREDS_FILE_MAX + 100);
    memset(big, '#', CREDS_FILE_MAX + 99);
    big[CREDS_FILE_MAX + 99] = '\0';
    write_mode(file, big, 0600);
    c = creds_load(home, &e);
    ok(!c && e && strstr(err_msg(e), "larger than"), "over 64 KiB refused");
    err_free(e);
    free(big);
    free(real);
    free(file);
    free(home);
}

struct parse_case {
    const char *text;
    const char *want; /* substring of the error, NULL = loads */
};

static void test_file_parse(void)
{
    char *home = new_home("parse");
    char *file = path2(home, CREDS_FILE);
    static const struct parse_case cases[] = {
        {"", NULL},
        {"# only a comment\n\n", NULL},
        {"schema = 1\n", NULL},
        {"schema=1\r\n[ secrets ]\r\n  github='" SK_GH "'   # literal\r\n", NULL},
        {"schema = 1 # c\n[secrets] # c\nopenai = \"\"\n", NULL},
        {"[secrets]\nopenai = \"" SK_OAI "\"\n", "missing schema = 1"},
        {"schema = 2\n", ":1: unsupported schema"},
        {"schema = \"1\"\n", ":1: schema must be an integer"},
        {"schema = 1\nschema = 1\n", ":2: duplicate key"},
        {"schema = 1\nname = \"x\"\n", ":2: unknown key"},
        {"schema = 1\n[other]\n", ":2: unknown table"},
        {"schema = 1\n[[secrets]]\n", ":2: arrays of tables"},
        {"schema = 1\n[secrets]\n[secrets]\n", ":3: [secrets] appears twice"},
        {"schema = 1\n[secrets]\nazure = \"abcdefghijkl\"\n", ":3: unknown key in [secrets]"},
        {"schema = 1\n[secrets]\nopenai = \"" SK_OAI "\"\nopenai = \"" SK_OAI "\"\n",
         ":4: duplicate key"},
        {"schema = 1\n[secrets]\nopenai = \"" SK_OAI "\n", ":3: unterminated string"},
        {"schema = 1\n[secrets]\nopenai = \"" SK_OAI "\" x\n", ":3: unexpected text"},
        {"schema = 1\n[secrets]\nopenai = \"sk-\\u0041bcdefgh\"\n", ":3: escapes are not"},
        {"schema = 1\n[secrets]\nopenai = \"\"\"x\"\"\"\n", ":3: multi-line"},
        {"schema = 1\n[secrets]\nopenai = " SK_OAI "\n", ":3: expected a quoted string"},
        {"schema = 1\n[secrets]\nopenai = \"tiny\"\n", ":3: the openai secret must be"},
        {"schema = 1\nsecrets.openai = \"" SK_OAI "\"\n", ":2: expected key = value"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        write_mode(file, cases[i].text, 0600);
        struct err *e = NULL;
        struct creds *c = creds_load(home, &e);
        if (!cases[i].want)
            ok(c && !e, "case %zu loads: %s", i, e ? err_msg(e) : "");
        else
            ok(!c && e && e->status == 400 && strstr(err_msg(e), cases[i].want) &&
                   strstr(err_msg(e), file) && !strstr(err_msg(e), SK_OAI),
               "case %zu: %s", i, e ? err_msg(e) : "(loaded)");
        err_free(e);
        creds_free(c);
    }
    write_mode(file, "schema=1\r\n[ secrets ]\r\n  github='" SK_GH "'   # literal\r\n", 0600);
    struct creds *c = creds_load(home, NULL);
    is_str(creds_secret(c, CREDS_GITHUB), SK_GH, "literal string value, CRLF lines");
    ok(creds_secret(c, CREDS_OPENAI) == NULL, "absent key: no secret");
    creds_free(c);
    free(file);
    free(home);
}

/* ---------- placeholders ---------- */

static void test_placeholders(void)
{
    char ph[CREDS_PLACEHOLDER_MAX];
    struct err *e = NULL;
    for (int p = 0; p < CREDS_NPROV; p++) {
        is_int(creds_placeholder_new(p, ph, &e), 0, "new %s", creds_provider_name(p));
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "capsem-placeholder-%s-", creds_provider_name(p));
        bool shape = strncmp(ph, prefix, strlen(prefix)) == 0 &&
                     strlen(ph) == strlen(prefix) + 26 &&
                     strspn(ph + strlen(prefix), "abcdefghijklmnopqrstuvwxyz234567") == 26;
        ok(shape, "shape: %s", ph);
        enum creds_provider got = CREDS_NPROV;
        ok(creds_placeholder_valid(ph, &got) && got == (enum creds_provider)p, "valid, provider");
    }
    /* Randomness: 2000 placeholders, all distinct; every letter of the
     * alphabet appears in every one of the 26 positions' union, and each
     * position's first char is not constant. */
    enum { N = 2000 };
    static char many[N][CREDS_PLACEHOLDER_MAX];
    int counts[256] = {0};
    for (int i = 0; i < N; i++) {
        creds_placeholder_new(CREDS_OPENAI, many[i], NULL);
        for (const char *s = many[i] + strlen("capsem-placeholder-openai-"); *s; s++)
            counts[(unsigned char)*s]++;
    }
    int dup = 0;
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            dup += strcmp(many[i], many[j]) == 0;
    is_int(dup, 0, "2000 placeholders are distinct");
    int lo = N * 26, hi = 0;
    for (const char *a = "abcdefghijklmnopqrstuvwxyz234567"; *a; a++) {
        lo = MIN(lo, counts[(unsigned char)*a]);
        hi = MAX(hi, counts[(unsigned char)*a]);
    }
    /* 52000 symbols over 32 values: about 1625 each. */
    ok(lo > 1300 && hi < 1950, "uniform alphabet use (min %d, max %d)", lo, hi);
    int last_pos_vals[32] = {0}, distinct = 0;
    for (int i = 0; i < N; i++) {
        char ch = many[i][strlen(many[i]) - 1];
        int v = ch >= 'a' ? ch - 'a' : ch - '2' + 26;
        distinct += !last_pos_vals[v]++;
    }
    is_int(distinct, 32, "the last position takes all 32 values");

    static const char *const invalid[] = {
        "capsem-placeholder-",
        "capsem-placeholder-openai-",
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxy",   /* 25 */
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxyza", /* 27 */
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxyZ",
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxy1",
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxy8",
        "capsem-placeholder-azure-abcdefghijklmnopqrstuvwxyz",
        "Capsem-placeholder-openai-abcdefghijklmnopqrstuvwxyz",
        " capsem-placeholder-openai-abcdefghijklmnopqrstuvwxyz",
        "capsem-placeholder-openai-abcdefghijklmnopqrstuvwxyz ",
        "capsem-placeholder-openai_abcdefghijklmnopqrstuvwxyz",
        "",
    };
    for (size_t i = 0; i < ARRAY_SIZE(invalid); i++)
        ok(!creds_placeholder_valid(invalid[i], NULL), "invalid: '%s'", invalid[i]);
    ok(!creds_placeholder_valid(NULL, NULL), "NULL is invalid");
    ok(creds_placeholder_valid("capsem-placeholder-github-abcdefghijklmnopqrstuvwxyz", NULL),
       "valid without provider out");

    struct creds_vm vm;
    struct creds *c = creds_from_values((const char *[]){SK_ANT, NULL, NULL, SK_GH}, NULL);
    is_int(creds_vm_new(c, &vm, NULL), 0, "vm placeholders");
    ok(creds_placeholder_valid(vm.placeholder[CREDS_ANTHROPIC], NULL) &&
           creds_placeholder_valid(vm.placeholder[CREDS_GITHUB], NULL) &&
           vm.placeholder[CREDS_OPENAI][0] == '\0' && vm.placeholder[CREDS_GOOGLE][0] == '\0',
       "placeholders only for providers with a secret");
    creds_free(c);
}

/* ---------- the request check ---------- */

#define MAXH 8
struct req {
    struct http1_header h[MAXH];
    size_t nh;
    char store[MAXH][2][4096];
};

static void req_add(struct req *r, const char *name, const char *value)
{
    if (r->nh == MAXH)
        abort();
    snprintf(r->store[r->nh][0], sizeof(r->store[0][0]), "%s", name);
    snprintf(r->store[r->nh][1], sizeof(r->store[0][1]), "%s", value);
    r->h[r->nh] = (struct http1_header){r->store[r->nh][0], r->store[r->nh][1],
                                        strlen(r->store[r->nh][0]), strlen(r->store[r->nh][1])};
    r->nh++;
}

static struct creds *C;
static struct creds_vm VM, OTHER;

static int check(const char *host, struct req *r, const char *target, struct creds_outcome *o)
{
    struct err *e = NULL;
    int rc = creds_check_request(C, &VM, host, r->h, r->nh, target ? target : "/", o, &e);
    if (rc < 0)
        diag("check failed: %s", err_msg(e));
    err_free(e);
    return rc;
}

static char *b64(const char *s)
{
    static char out[4][4096];
    static int k;
    char *o = out[k++ % 4];
    if (strlen(s) > 3000)
        abort();
    int n = EVP_EncodeBlock((unsigned char *)o, (const unsigned char *)s, (int)strlen(s));
    o[n] = '\0';
    return o;
}

static char *cat(const char *a, const char *b)
{
    static char out[8][4096];
    static int k;
    char *o = out[k++ % 8];
    snprintf(o, 4096, "%s%s", a, b);
    return o;
}

static void want_subst(const char *label, const char *host, const char *name, const char *value,
                       const char *want_name, const char *want_value, int provider)
{
    struct req r = {.nh = 0};
    req_add(&r, "Host", host);
    req_add(&r, "Accept", "*/*");
    req_add(&r, name, value);
    static struct creds_outcome o;
    int rc = check(host, &r, "/v1/x", &o);
    ok(rc == 0 && o.verdict == CREDS_OK && o.nsubst == 1 && o.provider == provider &&
           strcmp(o.subst[0].name, want_name) == 0 && strcmp(o.subst[0].value, want_value) == 0 &&
           o.target[0] == '\0',
       "%s: substituted (verdict %d, nsubst %zu, %s)", label, o.verdict, o.nsubst, o.detail);
    creds_outcome_wipe(&o);
}

static void test_substitution(void)
{
    const char *ant = VM.placeholder[CREDS_ANTHROPIC], *oai = VM.placeholder[CREDS_OPENAI];
    const char *goo = VM.placeholder[CREDS_GOOGLE], *gh = VM.placeholder[CREDS_GITHUB];
    want_subst("anthropic x-api-key", "api.anthropic.com", "x-api-key", ant, "x-api-key", SK_ANT,
               CREDS_ANTHROPIC);
    want_subst("anthropic X-Api-Key (name case)", "api.anthropic.com", "X-Api-Key", ant,
               "X-Api-Key", SK_ANT, CREDS_ANTHROPIC);
    want_subst("anthropic Bearer", "api.anthropic.com", "Authorization", cat("Bearer ", ant),
               "Authorization", cat("Bearer ", SK_ANT), CREDS_ANTHROPIC);
    want_subst("anthropic bearer (scheme case kept)", "api.anthropic.com", "authorization",
               cat("bearer ", ant), "authorization", cat("bearer ", SK_ANT), CREDS_ANTHROPIC);
    want_subst("openai Bearer", "api.openai.com", "Authorization", cat("Bearer ", oai),
               "Authorization", cat("Bearer ", SK_OAI), CREDS_OPENAI);
    want_subst("openai AUTHORIZATION: BEARER", "api.openai.com", "AUTHORIZATION",
               cat("BEARER ", oai), "AUTHORIZATION", cat("BEARER ", SK_OAI), CREDS_OPENAI);
    want_subst("google x-goog-api-key", "generativelanguage.googleapis.com", "x-goog-api-key", goo,
               "x-goog-api-key", SK_GOO, CREDS_GOOGLE);
    want_subst("github Bearer on api.github.com", "api.github.com", "Authorization",
               cat("Bearer ", gh), "Authorization", cat("Bearer ", SK_GH), CREDS_GITHUB);
    want_subst("github token on github.com", "github.com", "Authorization", cat("token ", gh),
               "Authorization", cat("token ", SK_GH), CREDS_GITHUB);
    want_subst("github Basic password", "github.com", "Authorization",
               cat("Basic ", b64(cat("x-access-token:", gh))), "Authorization",
               cat("Basic ", b64(cat("x-access-token:", SK_GH))), CREDS_GITHUB);
    want_subst("github Basic, empty user", "api.github.com", "Authorization",
               cat("Basic ", b64(cat(":", gh))), "Authorization",
               cat("Basic ", b64(cat(":", SK_GH))), CREDS_GITHUB);

    /* Query parameter key, percent-encoded secret, other parameters kept. */
    struct req r = {.nh = 0};
    req_add(&r, "Host", "generativelanguage.googleapis.com");
    static struct creds_outcome o;
    char target[512], want[512];
    snprintf(target, sizeof(target), "/v1beta/models/g:streamGenerateContent?alt=sse&key=%s&x=1",
             goo);
    snprintf(want, sizeof(want), "/v1beta/models/g:streamGenerateContent?alt=sse&key=%s&x=1",
             "AIzaTESTgoogle%2Bkey%2Fwith%3Dspecial");
    is_int(check("generativelanguage.googleapis.com", &r, target, &o), 0, "query check");
    ok(o.verdict == CREDS_OK && o.nsubst == 0 && o.provider == CREDS_GOOGLE &&
           strcmp(o.target, want) == 0,
       "google query key substituted: %s", o.target);
    snprintf(target, sizeof(target), "/v1/models?key=%s", goo);
    check("generativelanguage.googleapis.com", &r, target, &o);
    is_str(o.target, "/v1/models?key=AIzaTESTgoogle%2Bkey%2Fwith%3Dspecial", "key alone");
    snprintf(target, sizeof(target), "/v1/models?apikey=%s", goo);
    check("generativelanguage.googleapis.com", &r, target, &o);
    ok(o.verdict == CREDS_OK && o.target[0] == '\0' && o.provider == -1,
       "other parameter names are not substituted (own placeholder, owner host: passes)");

    /* Not a listed position / not the whole credential: forwarded unchanged. */
    struct req r2 = {.nh = 0};
    req_add(&r2, "X-Api-Key", cat("prefix-", ant));
    check("api.anthropic.com", &r2, cat("/v1/", ant), &o);
    ok(o.verdict == CREDS_OK && o.nsubst == 0 && o.provider == -1,
       "own placeholder elsewhere toward its owner host passes unchanged");
    struct req r3 = {.nh = 0};
    req_add(&r3, "x-api-key", ant);
    check("api.openai.com", &r3, "/", &o);
    ok(o.verdict == CREDS_PLACEHOLDER_MISUSE && strstr(o.detail, "anthropic placeholder") &&
           strstr(o.detail, "api.anthropic.com") && o.nsubst == 0,
       "anthropic placeholder to api.openai.com: %s", o.detail);
    struct req r4 = {.nh = 0};
    req_add(&r4, "Authorization", cat("Bearer ", gh));
    check("api.openai.com", &r4, "/", &o);
    ok(o.verdict == CREDS_PLACEHOLDER_MISUSE && strstr(o.detail, "github.com and api.github.com"),
       "github placeholder to openai: %s", o.detail);
    struct req r5 = {.nh = 0};
    req_add(&r5, "Authorization", cat("token ", ant));
    check("api.anthropic.com", &r5, "/", &o);
    ok(o.verdict == CREDS_OK && o.nsubst == 0, "token scheme is github only");

    /* No secret held: nothing substituted. */
    struct creds *saved = C;
    C = creds_from_values((const char *[]){NULL, SK_OAI, NULL, NULL}, NULL);
    struct req r6 = {.nh = 0};
    req_add(&r6, "x-api-key", ant);
    check("api.anthropic.com", &r6, "/", &o);
    ok(o.verdict == CREDS_OK && o.nsubst == 0 && o.provider == -1,
       "no anthropic secret: the placeholder is forwarded as is");
    creds_free(C);
    C = saved;

    /* Two fields of a substituted name. */
    struct req r7 = {.nh = 0};
    req_add(&r7, "Authorization", cat("Bearer ", gh));
    req_add(&r7, "authorization", "Bearer other");
    check("api.github.com", &r7, "/", &o);
    ok(o.verdict == CREDS_PLACEHOLDER_MISUSE && o.nsubst == 0 && o.provider == -1 &&
           strstr(o.detail, "2 Authorization fields") && !strstr(o.subst[0].value, SK_GH),
       "duplicate Authorization refused, nothing substituted: %s", o.detail);

    /* Two listed positions at once. */
    struct req r8 = {.nh = 0};
    req_add(&r8, "x-api-key", ant);
    req_add(&r8, "Authorization", cat("Bearer ", ant));
    check("api.anthropic.com", &r8, "/", &o);
    ok(o.nsubst == 2 && strcmp(o.subst[0].value, SK_ANT) == 0 &&
           strcmp(o.subst[1].value, cat("Bearer ", SK_ANT)) == 0,
       "x-api-key and Authorization both substituted");

    /* A Basic username too long for the substituted value: an error. */
    struct req r9 = {.nh = 0};
    char user[1700];
    memset(user, 'u', sizeof(user) - 1);
    user[sizeof(user) - 1] = '\0';
    req_add(&r9, "Authorization", cat("Basic ", b64(cat(cat(user, ":"), gh))));
    struct err *e = NULL;
    ok(creds_check_request(C, &VM, "github.com", r9.h, r9.nh, "/", &o, &e) < 0 && e &&
           e->status == 400 && o.nsubst == 0,
       "oversized Basic substitution is an error: %s", e ? err_msg(e) : "");
    err_free(e);

    creds_outcome_wipe(&o);
    bool zero = true;
    for (size_t i = 0; i < sizeof(o); i++)
        zero &= ((unsigned char *)&o)[i] == 0;
    ok(zero, "creds_outcome_wipe zeroes the outcome");

    /* NULL creds and vm. */
    struct req r10 = {.nh = 0};
    req_add(&r10, "Authorization", "Bearer abc");
    ok(creds_check_request(NULL, NULL, "api.openai.com", r10.h, r10.nh, "/", &o, NULL) == 0 &&
           o.verdict == CREDS_OK && o.nsubst == 0,
       "no creds, no vm: OK");
}

static void want_verdict(const char *label, const char *host, const char *name, const char *value,
                         const char *target, enum creds_verdict v, const char *detail)
{
    struct req r = {.nh = 0};
    req_add(&r, "Host", host);
    if (name)
        req_add(&r, name, value);
    static struct creds_outcome o;
    int rc = check(host, &r, target, &o);
    bool clean = !strstr(o.detail, SK_ANT) && !strstr(o.detail, SK_OAI) &&
                 !strstr(o.detail, SK_GOO) && !strstr(o.detail, SK_GH);
    ok(rc == 0 && o.verdict == v && o.nsubst == 0 && o.provider == -1 && clean &&
           strstr(o.detail, detail),
       "%s: verdict %d, detail '%s'", label, o.verdict, o.detail);
}

static void test_misuse_and_leak(void)
{
    const char *ant = VM.placeholder[CREDS_ANTHROPIC], *gh = VM.placeholder[CREDS_GITHUB];
    const char *foreign = OTHER.placeholder[CREDS_ANTHROPIC];
    const enum creds_verdict M = CREDS_PLACEHOLDER_MISUSE, L = CREDS_SECRET_LEAK;
    want_verdict("placeholder in a custom header", "example.com", "X-Custom", cat("a ", ant), "/",
                 M, "field X-Custom");
    want_verdict("placeholder in a header name", "example.com", cat(ant, "-x"), "1", "/", M,
                 "a field name");
    want_verdict("placeholder in the path", "example.com", NULL, NULL, cat("/p/", ant), M,
                 "the request target");
    want_verdict("placeholder in the query", "example.com", NULL, NULL, cat("/p?k=", ant), M,
                 "the request target");
    want_verdict("percent-encoded placeholder", "example.com", NULL, NULL,
                 "/p?k=capsem%2Dplaceholder%2Danthropic-x", M, "percent-decoded");
    want_verdict("upper-case placeholder", "example.com", "Cookie", "s=CAPSEM-PLACEHOLDER-X", "/",
                 M, "malformed");
    want_verdict("placeholder in Basic credentials", "example.com", "Authorization",
                 cat("Basic ", b64(cat("user:", gh))), "/", M, "Basic credentials");
    want_verdict("placeholder in Proxy-Authorization Basic user", "example.com",
                 "Proxy-Authorization", cat("Basic ", b64(cat(gh, ":pw"))), "/", M,
                 "Basic credentials");
    want_verdict("Bearer placeholder to a non-owner", "example.com", "Authorization",
                 cat("Bearer ", ant), "/", M, "only api.anthropic.com may receive it");
    want_verdict("github placeholder to gist.github.com", "gist.github.com", "Authorization",
                 cat("token ", gh), "/", M, "github placeholder");
    want_verdict("another VM's placeholder to the owner host", "api.anthropic.com", "x-api-key",
                 foreign, "/", M, "another VM's anthropic placeholder");
    want_verdict("another VM's placeholder elsewhere", "example.com", "X-Note", foreign, "/", M,
                 "another VM's anthropic");
    want_verdict("malformed placeholder to the owner host", "api.anthropic.com", "x-api-key",
                 "capsem-placeholder-anthropic-short", "/", M, "malformed");
    want_verdict("placeholder with extra letters", "api.anthropic.com", "x-api-key", cat(ant, "x"),
                 "/", M, "malformed");
    want_verdict("clean request", "example.com", "Authorization", "Bearer sk-something-else", "/",
                 CREDS_OK, "");

    want_verdict("secret in a header", "example.com", "X-Api-Key", SK_ANT, "/", L,
                 "anthropic secret is in field X-Api-Key");
    want_verdict("secret inside a header value", "example.com", "Cookie", cat("a=", SK_GH), "/", L,
                 "github secret");
    want_verdict("secret in the URL", "example.com", NULL, NULL, cat("/x?t=", SK_OAI), L,
                 "openai secret is in the request target");
    want_verdict("percent-encoded secret in the URL", "example.com", NULL, NULL,
                 "/x?k=AIzaTESTgoogle%2Bkey%2Fwith%3Dspecial", L, "percent-decoded");
    want_verdict("secret in Basic credentials", "example.com", "Authorization",
                 cat("Basic ", b64(cat("u:", SK_GH))), "/", L, "Basic credentials");
    want_verdict("secret in a header name", "example.com", cat("x-", SK_OAI), "1", "/", L,
                 "a field name");
    want_verdict("openai secret to anthropic", "api.anthropic.com", "Authorization",
                 cat("Bearer ", SK_OAI), "/", L, "only api.openai.com");
    want_verdict("anthropic secret to its owner", "api.anthropic.com", "x-api-key", SK_ANT, "/",
                 CREDS_OK, "");
    want_verdict("secret beats placeholder", "example.com", "X-Both", cat(cat(ant, " "), SK_GH),
                 "/", L, "github secret");
    want_verdict("placeholder and secret in different fields", "example.com", "X-A",
                 cat(SK_ANT, ""), cat("/", gh), L, "anthropic");
}

/* ---------- body scan ---------- */

static void test_body_scan(void)
{
    const char *ph = VM.placeholder[CREDS_OPENAI];
    static char body[4096];
    /* A placeholder at every split position between two chunks. */
    snprintf(body, sizeof(body), "{\"prompt\":\"use %s please\"}", ph);
    size_t n = strlen(body), start = strstr(body, ph) - body, len = strlen(ph);
    int missed = 0, wrong_first = 0;
    for (size_t cut = start + 1; cut < start + len; cut++) {
        /* The "capsem-placeholder-" prefix alone is a hit. */
        bool first_should_hit = cut >= start + strlen("capsem-placeholder-");
        struct creds_body_scan *s = creds_body_scan_new(C);
        wrong_first += creds_body_scan_feed(s, body, cut) != first_should_hit;
        missed += !creds_body_scan_feed(s, body + cut, n - cut);
        missed += creds_body_scan_verdict(s) != CREDS_PLACEHOLDER_MISUSE;
        creds_body_scan_free(s);
    }
    is_int(wrong_first, 0, "first chunk hits exactly when it holds the whole prefix");
    is_int(missed, 0, "placeholder found at every split position");

    /* The 104-byte anthropic secret split at every position (longer than the
     * 64-byte minimum overlap). */
    snprintf(body, sizeof(body), "%0200d%s%0300d", 0, SK_ANT, 0);
    n = strlen(body);
    missed = 0;
    int early = 0;
    for (size_t cut = 201; cut < 200 + strlen(SK_ANT); cut++) {
        struct creds_body_scan *s = creds_body_scan_new(C);
        early += creds_body_scan_feed(s, body, cut);
        missed += !creds_body_scan_feed(s, body + cut, n - cut);
        missed += creds_body_scan_verdict(s) != CREDS_SECRET_LEAK;
        creds_body_scan_free(s);
    }
    is_int(early, 0, "no hit before the secret is complete");
    is_int(missed, 0, "secret found at every split position");

    /* One byte at a time, and in 7-byte chunks. */
    for (size_t step = 1; step <= 7; step += 6) {
        struct creds_body_scan *s = creds_body_scan_new(C);
        size_t hit_at = 0;
        for (size_t i = 0; i < n && !hit_at; i += step)
            if (creds_body_scan_feed(s, body + i, MIN(step, n - i)))
                hit_at = MIN(i + step, n);
        ok(hit_at >= 200 + strlen(SK_ANT) && hit_at < 200 + strlen(SK_ANT) + step,
           "%zu-byte chunks: hit right when the secret completes (%zu)", step, hit_at);
        ok(creds_body_scan_feed(s, "x", 1), "sticky after a hit");
        creds_body_scan_free(s);
    }

    /* A clean body, many chunks: no hit. */
    struct creds_body_scan *s = creds_body_scan_new(C);
    bool any = false;
    for (int i = 0; i < 1000; i++) {
        char chunk[97];
        for (size_t j = 0; j < sizeof(chunk); j++)
            chunk[j] = (char)('a' + (i * 31 + (int)j * 7) % 26);
        any |= creds_body_scan_feed(s, chunk, sizeof(chunk));
    }
    ok(!any && creds_body_scan_verdict(s) == CREDS_OK, "clean body: no hit");
    ok(creds_body_scan_feed(s, "..Capsem-Placeholder-", 21), "upper-case prefix is a hit");
    creds_body_scan_free(s);
    ok(!creds_body_scan_feed(s = creds_body_scan_new(NULL), "", 0), "empty chunk, no creds");
    ok(creds_body_scan_feed(s, "capsem-placeholder-", 19), "no creds: placeholders still hit");
    creds_body_scan_free(s);
    creds_body_scan_free(NULL);
}

/* ---------- redaction ---------- */

static void expect_hmac(const uint8_t key[32], const char *data, char out[13])
{
    unsigned char md[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key, 32, (const unsigned char *)data, strlen(data), md, &len);
    for (int i = 0; i < 6; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_redaction(void)
{
    uint8_t key[32], key2[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i, key2[i] = (uint8_t)(i + 1);
    char out[256], want[256], h[13];
    const char *ant = VM.placeholder[CREDS_ANTHROPIC], *gh = VM.placeholder[CREDS_GITHUB];

    creds_redact_header(C, key, "Content-Type", "application/json", out, sizeof(out));
    is_str(out, "application/json", "verbatim list: content-type");
    creds_redact_header(C, key, "user-agent", cat("tool/1 ", SK_OAI), out, sizeof(out));
    is_str(out, "tool/1 [secret:openai]", "verbatim value with a secret in it");
    creds_redact_header(C, key, "Authorization", cat("Bearer ", ant), out, sizeof(out));
    is_str(out, "Bearer placeholder:anthropic", "Bearer placeholder");
    creds_redact_header(C, key, "authorization", cat("token ", OTHER.placeholder[CREDS_GITHUB]),
                        out, sizeof(out));
    is_str(out, "token placeholder:github", "any VM's placeholder shape counts");
    creds_redact_header(C, key, "Authorization", cat("Basic ", b64(cat("x:", gh))), out,
                        sizeof(out));
    is_str(out, "Basic placeholder:github", "Basic with a placeholder password");
    creds_redact_header(C, key, "Authorization", cat(cat("x", SK_OAI), " abc"), out, sizeof(out));
    ok(strncmp(out, "x[secret:openai] hmac:", 22) == 0 && !strstr(out, SK_OAI),
       "a secret in the scheme position is redacted too: %s", out);
    expect_hmac(key, "sk-real-looking-token", h);
    snprintf(want, sizeof(want), "Bearer hmac:%s", h);
    int n = creds_redact_header(C, key, "Authorization", "Bearer sk-real-looking-token", out,
                                sizeof(out));
    is_str(out, want, "Bearer other: hmac of the credential");
    is_int(n, (int)strlen(want), "returns the length");
    creds_redact_header(C, key2, "Authorization", "Bearer sk-real-looking-token", out, sizeof(out));
    ok(strcmp(out, want) != 0 && strncmp(out, "Bearer hmac:", 12) == 0,
       "another install key gives another hmac");
    const char *basic = cat("Basic ", b64("user:pass"));
    expect_hmac(key, basic + 6, h);
    snprintf(want, sizeof(want), "Basic hmac:%s", h);
    creds_redact_header(C, key, "Proxy-Authorization", basic, out, sizeof(out));
    is_str(out, want, "Proxy-Authorization Basic without placeholder");
    expect_hmac(key, "opaque", h);
    snprintf(want, sizeof(want), "hmac:%s", h);
    creds_redact_header(C, key, "Authorization", "opaque", out, sizeof(out));
    is_str(out, want, "no scheme: hmac only");
    creds_redact_header(C, key, "x-api-key", ant, out, sizeof(out));
    is_str(out, "placeholder:anthropic", "x-api-key placeholder");
    expect_hmac(key, SK_ANT, h);
    snprintf(want, sizeof(want), "hmac:%s", h);
    creds_redact_header(C, key, "x-api-key", SK_ANT, out, sizeof(out));
    is_str(out, want, "x-api-key secret: hmac, never the value");
    expect_hmac(key, "session=abc", h);
    snprintf(want, sizeof(want), "hmac:%s", h);
    creds_redact_header(NULL, key, "Cookie", "session=abc", out, sizeof(out));
    is_str(out, want, "cookie: hmac");
    creds_redact_header(C, key, "X-Thing", "", out, sizeof(out));
    is_str(out, "", "empty value stays empty");
    is_int(creds_redact_header(C, key, "Cookie", "x", out, 10), -1, "cap below the minimum");
    char small[CREDS_REDACT_MIN];
    char longv[300];
    memset(longv, 'v', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    n = creds_redact_header(C, key, "Location", longv, small, sizeof(small));
    ok(n == CREDS_REDACT_MIN - 1 && strlen(small) == CREDS_REDACT_MIN - 1,
       "verbatim value truncated to fit");

    char text[512];
    snprintf(text, sizeof(text), "a %s b %s c capsem-placeholder-bogus-1 d", SK_GH, ant);
    creds_redact_text(C, text, strlen(text), out, sizeof(out));
    is_str(out, "a [secret:github] b [secret:anthropic] c [secret:unknown] d", "preview redaction");
    snprintf(text, sizeof(text), "tail %.*s", 20, SK_ANT);
    creds_redact_text(C, text, strlen(text), out, sizeof(out));
    is_str(out, "tail [secret:anthropic]", "a secret cut by the end of the preview");
    snprintf(text, sizeof(text), "tail %.*s", 5, SK_ANT);
    creds_redact_text(C, text, strlen(text), out, sizeof(out));
    is_str(out, "tail sk-an", "a short tail is not a secret prefix");
    size_t w = creds_redact_text(C, text, strlen(text), out, 8);
    ok(w == 7 && strcmp(out, "tail sk") == 0, "cap respected");
    snprintf(text, sizeof(text), "ab %s", SK_OAI);
    w = creds_redact_text(C, text, strlen(text), out, 10);
    ok(w == 3 && strcmp(out, "ab ") == 0, "never part of a token: '%s'", out);
}

/* ---------- HMAC key ---------- */

static void test_hmac_key(void)
{
    char *home = new_home("hk");
    char *dir = path2(home, "ca"), *file = path2(dir, CREDS_HMAC_KEY_FILE);
    uint8_t k1[32], k2[32], zero[32] = {0};
    struct err *e = NULL;
    is_int(creds_hmac_key(home, k1, &e), 0, "key created: %s", e ? err_msg(e) : "");
    is_int(mode_of(file), 0600, "telemetry.key is 0600");
    is_int(mode_of(dir), 0700, "ca dir is 0700");
    struct stat st;
    ok(stat(file, &st) == 0 && st.st_size == 32, "32 bytes");
    ok(memcmp(k1, zero, 32) != 0, "not all zero");
    is_int(creds_hmac_key(home, k2, NULL), 0, "read back");
    ok(memcmp(k1, k2, 32) == 0, "same key on the second call");
    chmod(file, 0644);
    ok(creds_hmac_key(home, k2, &e) < 0 && e && strstr(err_msg(e), "chmod 600"),
       "group-readable key refused: %s", e ? err_msg(e) : "");
    err_free(e), e = NULL;
    write_mode(file, "short", 0600);
    ok(creds_hmac_key(home, k2, &e) < 0 && e && strstr(err_msg(e), "not a 32-byte key"),
       "wrong size refused");
    err_free(e);
    char *home2 = new_home("hk2");
    uint8_t k3[32];
    creds_hmac_key(home2, k3, NULL);
    ok(memcmp(k1, k3, 32) != 0, "another install, another key");
    free(home2);
    free(file);
    free(dir);
    free(home);
}

int main(void)
{
    if (!mkdtemp(root))
        return 1;
    test_providers();
    test_secret_check();
    test_file_roundtrip();
    test_file_modes();
    test_file_parse();
    test_placeholders();

    C = creds_from_values(all_values, NULL);
    struct creds *other_c = creds_from_values(all_values, NULL);
    if (!C || !other_c || creds_vm_new(C, &VM, NULL) < 0 || creds_vm_new(other_c, &OTHER, NULL) < 0)
        return 1;
    creds_free(other_c);
    test_substitution();
    test_misuse_and_leak();
    test_body_scan();
    test_redaction();
    test_hmac_key();
    creds_free(C);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return done_testing();
}
