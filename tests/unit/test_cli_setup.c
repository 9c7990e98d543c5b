/* Unit tests for installing assets (vm/assets_install), the setup steps
 * (cli/setup, API keys and the MITM CA included), service control helpers
 * (cli/svcctl) and the host-side doctor checks (cli/doctor), all in a
 * scratch directory. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "base/paths.h"
#include "base/util.h"
#include "base/uuid.h"
#include "cli/doctor.h"
#include "cli/setup.h"
#include "cli/svcctl.h"
#include "creds/creds.h"
#include "tap.h"
#include "tls/ca.h"
#include "vm/assets.h"
#include "vm/assets_install.h"
#include "vm/vmconfig.h"

static char root[256];

static char *path2(const char *a, const char *b)
{
    char *s = NULL;
    if (asprintf(&s, "%s/%s", a, b) < 0)
        abort();
    return s;
}

static void write_file(const char *path, const char *text)
{
    if (file_write_atomic(path, text, strlen(text), 0644, NULL) < 0)
        abort();
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static json_t *file_entry(const char *vdir, const char *file)
{
    char *p = path2(vdir, file);
    char sum[65];
    struct stat st;
    if (sha256_file(p, sum, NULL) < 0 || stat(p, &st) < 0)
        abort();
    free(p);
    return json_pack("{s:s, s:s, s:I}", "file", file, "sha256", sum, "size",
                     (json_int_t)st.st_size);
}

/* A source directory with version ver: kernel, initrd, two rootfs. */
static void make_source(const char *src, const char *ver, const char *salt)
{
    char vname[64];
    snprintf(vname, sizeof(vname), "v%s", ver);
    char *vdir = path2(src, vname);
    mkdir_p(vdir, 0755, NULL);
    const char *files[] = {"vmlinux", "initrd.img", "rootfs-code.erofs", "rootfs-minimal.erofs"};
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        char *p = path2(vdir, files[i]);
        char text[128];
        snprintf(text, sizeof(text), "%s of %s (%s)\n", files[i], ver, salt);
        write_file(p, text);
        free(p);
    }
    char *mpath = path2(src, "manifest.json");
    json_t *m = json_load_file(mpath, 0, NULL);
    if (!m)
        m = json_pack("{s:i, s:{}}", "format", 1, "versions");
    json_object_set_new(m, "current", json_string(ver));
    json_object_set_new(
        json_object_get(m, "versions"), ver,
        json_pack("{s:s, s:o, s:o, s:{s:o, s:o}, s:s}", "arch", "x86_64", "kernel",
                  file_entry(vdir, "vmlinux"), "initrd", file_entry(vdir, "initrd.img"), "rootfs",
                  "code", file_entry(vdir, "rootfs-code.erofs"), "minimal",
                  file_entry(vdir, "rootfs-minimal.erofs"), "kernel_release", "6.1-test"));
    json_dump_file(m, mpath, JSON_INDENT(2));
    json_decref(m);
    free(mpath);
    free(vdir);
}

struct events {
    int skip, install, file, done;
};

static void on_event(void *arg, enum assets_event ev, const char *version, const char *detail)
{
    struct events *e = arg;
    e->skip += ev == ASSETS_EV_SKIP;
    e->install += ev == ASSETS_EV_INSTALL;
    e->file += ev == ASSETS_EV_FILE;
    e->done += ev == ASSETS_EV_DONE;
}

static json_t *load(const char *dir)
{
    char *p = path2(dir, "manifest.json");
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    return j;
}

static void test_install(void)
{
    char *src = path2(root, "src"), *dst = path2(root, "home/assets");
    make_source(src, "1.0", "a");
    struct events ev = {0};
    struct err *e = NULL;
    is_int(assets_install(src, dst, false, on_event, &ev, &e), 0, "install v1.0");
    ok(ev.install == 1 && ev.file == 4 && ev.done == 1 && ev.skip == 0,
       "events: 1 version, 4 files");
    char *k = path2(dst, "v1.0/vmlinux");
    ok(exists(k), "kernel placed");
    struct stat st;
    ok(stat(dst, &st) == 0 && (st.st_mode & 0777) == 0700, "assets dir created 0700");
    json_t *m = load(dst);
    is_str(json_string_value(json_object_get(m, "current")), "1.0", "manifest current");
    is_str(json_string_value(json_object_get(json_object_get(json_object_get(m, "versions"), "1.0"),
                                             "kernel_release")),
           "6.1-test", "extra manifest fields kept");
    json_decref(m);

    struct assets a;
    ok(assets_load(dst, &a, NULL) == 0 &&
           assets_verify_boot_set(&a, assets_find(&a, "1.0"), "code", NULL) == 0,
       "installed copy loads and verifies");
    assets_free(&a);

    memset(&ev, 0, sizeof(ev));
    is_int(assets_install(src, dst, false, on_event, &ev, NULL), 0, "second install");
    ok(ev.skip == 1 && ev.install == 0, "already installed version skipped");
    memset(&ev, 0, sizeof(ev));
    is_int(assets_install(src, dst, true, on_event, &ev, NULL), 0, "forced install");
    ok(ev.install == 1 && ev.file == 4, "force re-installs and re-verifies");

    /* A second version; then a corrupt third one must leave nothing behind. */
    make_source(src, "2.0", "b");
    is_int(assets_install(src, dst, false, NULL, NULL, NULL), 0, "install v2.0");
    m = load(dst);
    is_str(json_string_value(json_object_get(m, "current")), "2.0", "current moves to v2.0");
    ok(json_object_get(json_object_get(m, "versions"), "1.0") != NULL, "v1.0 still listed");
    json_decref(m);
    make_source(src, "3.0", "c");
    char *bad = path2(src, "v3.0/rootfs-code.erofs");
    write_file(bad, "tampered\n");
    ok(assets_install(src, dst, false, NULL, NULL, &e) < 0 && e && e->status == 412 &&
           strstr(err_msg(e), "v3.0/rootfs-code.erofs") && strstr(err_msg(e), "size"),
       "size mismatch refused: %s", e ? err_msg(e) : "");
    err_free(e);
    e = NULL;
    char *v3 = path2(dst, "v3.0");
    ok(!exists(v3), "no half-installed v3.0");
    m = load(dst);
    is_str(json_string_value(json_object_get(m, "current")), "2.0", "manifest untouched");
    json_decref(m);
    char text[64];
    snprintf(text, sizeof(text), "rootfs-code.erofs of 3.0 (X)\n"); /* same size, other bytes */
    write_file(bad, text);
    ok(assets_install(src, dst, false, NULL, NULL, &e) < 0 && e && strstr(err_msg(e), "sha256"),
       "sha256 mismatch refused");
    err_free(e);
    e = NULL;
    char *left = NULL;
    if (asprintf(&left, "%s/.v3.0.tmp-%d", dst, (int)getpid()) < 0)
        abort();
    ok(!exists(v3) && !exists(left), "no temp directory left behind");
    free(left);
    free(v3);
    free(bad);

    char *nomf = path2(root, "nowhere");
    ok(assets_install(nomf, dst, false, NULL, NULL, &e) < 0 && e &&
           strstr(err_msg(e), "asset source"),
       "missing source manifest: %s", e ? err_msg(e) : "");
    err_free(e);
    free(nomf);
    free(k);
    free(src);
    free(dst);
}

static void test_cleanup(void)
{
    char *dst = path2(root, "home/assets");
    char *v1 = path2(dst, "v1.0"), *v2 = path2(dst, "v2.0");
    char *stale = NULL, *live = NULL;
    if (asprintf(&stale, "%s/.v9.tmp-999999999", dst) < 0 ||
        asprintf(&live, "%s/.v8.tmp-%d", dst, (int)getpid()) < 0)
        abort();
    mkdir(stale, 0700);
    mkdir(live, 0700);
    const char *keep[] = {"1.0"};
    is_int(assets_cleanup(dst, keep, 1, NULL), 0, "kept version not removed");
    ok(exists(v1) && exists(v2), "current and kept versions stay");
    ok(!exists(stale) && exists(live), "stale temp removed, a live one kept");
    is_int(assets_cleanup(dst, NULL, 0, NULL), 1, "unused version removed");
    ok(!exists(v1) && exists(v2), "v1.0 gone, current stays");
    json_t *m = load(dst);
    ok(json_object_get(json_object_get(m, "versions"), "1.0") == NULL &&
           json_object_get(json_object_get(m, "versions"), "2.0") != NULL,
       "manifest lists what is left");
    json_decref(m);
    char *empty = path2(root, "empty");
    mkdir(empty, 0700);
    is_int(assets_cleanup(empty, NULL, 0, NULL), 0, "no manifest: nothing removed");
    rmdir(live);
    free(empty);
    free(stale);
    free(live);
    free(v1);
    free(v2);
    free(dst);
}

static void test_in_use(void)
{
    char *home = path2(root, "use"), *run = path2(root, "use/run");
    char *img = path2(home, "images/base"), *vm = path2(run, "persistent/abc"),
         *vm2 = path2(run, "sessions/def");
    mkdir_p(img, 0700, NULL);
    mkdir_p(vm, 0700, NULL);
    char *f = path2(img, "image.json");
    write_file(f, "{\"name\":\"base\",\"base_version\":\"2.0\"}");
    free(f);
    f = path2(vm, "vm.json");
    write_file(f, "{\"kernel\":\"/h/assets/v1.0/vmlinux\"}");
    free(f);
    const char *installed[] = {"1.0", "2.0", "3.0"};
    const char *keep[3];
    int n = cli_assets_in_use(home, run, installed, 3, keep, NULL);
    ok(n == 2 && strcmp(keep[0], "1.0") == 0 && strcmp(keep[1], "2.0") == 0,
       "versions of VMs (paths) and images (base_version) are in use");
    mkdir_p(vm2, 0700, NULL);
    struct err *e = NULL;
    ok(cli_assets_in_use(home, run, installed, 3, keep, &e) < 0 && e &&
           strstr(err_msg(e), "sessions/def"),
       "a VM directory without vm.json stops the cleanup");
    err_free(e);
    free(img);
    free(vm);
    free(vm2);
    free(home);
    free(run);
}

struct lines {
    char text[8192];
    size_t len;
};

static void on_step(void *arg, enum cli_step_level level, const char *step, const char *text)
{
    struct lines *l = arg;
    static const char *const tags[] = {"ok", "skip", "warn"};
    int n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "[%s] %s: %s\n", tags[level], step,
                     text);
    if (n > 0)
        l->len = MIN(l->len + (size_t)n, sizeof(l->text) - 1);
}

static void test_setup_run(void)
{
    char *home = path2(root, "setup"), *run = path2(root, "setup/run"), *src = path2(root, "src");
    setenv("CAPSEM_HOME", home, 1);
    make_source(src, "3.0", "c"); /* test_install left it tampered */
    struct lines l = {.len = 0};
    char *const no_env[] = {NULL};
    struct cli_setup s = {.home = home,
                          .run_dir = run,
                          .assets_from = src,
                          .env = no_env,
                          .step = on_step,
                          .step_arg = &l};
    struct err *e = NULL;
    is_int(cli_setup_run(&s, &e), 0, "setup runs: %s", e ? err_msg(e) : "");
    ok(strstr(l.text, "[skip] credentials: no API keys in the environment") &&
           strstr(l.text, "[ok] ca: created "),
       "credentials and ca steps reported");
    ok(strstr(l.text, "[ok] ca: created ") <
               strstr(l.text,
                      "[skip] npm: npm not found on PATH; the @npm host list stays empty\n") &&
           strstr(l.text, "[skip] npm: ") < strstr(l.text, "[skip] dashboard: "),
       "no PATH in the environment: npm step skipped, between ca and dashboard");
    is_str(s.assets_version, "3.0", "assets version is the source's current");
    ok(strstr(l.text, "[ok] layout: ") && strstr(l.text, "[ok] assets: installed v3.0 from ") &&
           strstr(l.text, "[ok] config: wrote ") && strstr(l.text, "[skip] dashboard: ") &&
           strstr(l.text, "[skip] service: CAPSEM_HOME is set") && strstr(l.text, " kvm: ") &&
           strstr(l.text, "[ok] cleanup: no unused asset versions") &&
           strstr(l.text, "[ok] state: wrote "),
       "one line per step");
    char *toml = path2(home, "user.toml"), *sj = path2(home, "setup.json");
    _cleanup_free_ char *text = NULL;
    ok(file_read_all(toml, 1 << 20, &text, NULL, NULL) == 0 && strstr(text, "# cpus = 2") &&
           !strstr(text, "\ncpus"),
       "user.toml has every key commented out");
    struct stat st;
    ok(stat(toml, &st) == 0 && (st.st_mode & 0777) == 0600, "user.toml is 0600");
    json_t *j = json_load_file(sj, 0, NULL);
    ok(j && strcmp(json_string_value(json_object_get(j, "assets_version")), "3.0") == 0 &&
           strcmp(json_string_value(json_object_get(j, "version")), CAPSEM_VERSION) == 0 &&
           json_is_string(json_object_get(j, "completed_at")),
       "setup.json {version, completed_at, assets_version}");
    ok(j && !json_object_get(j, "npm_registry_host"), "no npm: setup.json has no npm host");
    json_decref(j);
    ok(stat(home, &st) == 0 && (st.st_mode & 0777) == 0700 && stat(run, &st) == 0 &&
           (st.st_mode & 0777) == 0700,
       "home and run dir are 0700");
    cli_setup_free(&s);

    write_file(toml, "[vm]\ncpus = 4\n");
    l.len = 0;
    l.text[0] = '\0';
    is_int(cli_setup_run(&s, NULL), 0, "second run");
    ok(strstr(l.text, "[ok] assets: v3.0 already installed") && strstr(l.text, "kept") &&
           strstr(l.text, "no unused asset versions"),
       "second run changes nothing");
    free(text);
    text = NULL;
    ok(file_read_all(toml, 1 << 20, &text, NULL, NULL) == 0 &&
           strcmp(text, "[vm]\ncpus = 4\n") == 0,
       "existing user.toml kept");
    cli_setup_free(&s);

    char *none = path2(root, "setup-none");
    struct cli_setup s2 = {.home = none, .run_dir = run, .assets_from = NULL};
    unsetenv("CAPSEM_ASSETS_SOURCE");
    e = NULL;
    ok(cli_setup_run(&s2, &e) < 0 && e && strstr(err_msg(e), "assets: no guest assets to install"),
       "no assets anywhere: %s", e ? err_msg(e) : "");
    err_free(e);
    cli_setup_free(&s2);
    free(none);
    free(toml);
    free(sj);
    free(home);
    free(run);
    free(src);
}

/* ---------- API keys and the MITM CA ---------- */

#define KEY_ANT "sk-ant-setup-0123456789abcdef"
#define KEY_GOO "AIzaSetupGoogle0123456"
#define KEY_GEM "AIzaSetupGemini0123456"
#define KEY_GH  "ghp_setupGithub0123456789"

/* The "SHA-256 XX:..." fingerprint in the ca line, or "". */
static void ca_fp(const char *text, char out[96])
{
    const char *line = strstr(text, "] ca: ");
    const char *p = line ? strstr(line, "SHA-256 ") : NULL;
    snprintf(out, 96, "%.95s", p ? p + 8 : "");
}

static int setup_with(const char *home, const char *run, const char *src, char *const *env,
                      bool rotate, struct lines *l, struct err **errp)
{
    l->len = 0;
    l->text[0] = '\0';
    struct cli_setup s = {.home = home,
                          .run_dir = run,
                          .assets_from = src,
                          .env = env,
                          .rotate_ca = rotate,
                          .step = on_step,
                          .step_arg = l};
    int rc = cli_setup_run(&s, errp);
    cli_setup_free(&s);
    return rc;
}

static bool cn_has_uuid(const char *dir)
{
    struct ca *ca = ca_load(dir, NULL);
    char cn[128] = "";
    if (ca)
        X509_NAME_get_text_by_NID(X509_get_subject_name(ca_cert(ca)), NID_commonName, cn,
                                  sizeof(cn));
    ca_free(ca);
    return strncmp(cn, "capsem MITM CA ", 15) == 0 && uuid_shaped(cn + 15);
}

static mode_t mode_of(const char *dir, const char *name)
{
    char *p = path2(dir, name);
    struct stat st;
    mode_t m = stat(p, &st) == 0 ? (st.st_mode & 07777) : (mode_t)-1;
    free(p);
    return m;
}

static void test_setup_keys_ca(void)
{
    char *home = path2(root, "keys"), *run = path2(root, "keys/run"), *src = path2(root, "src");
    char *cadir = path2(home, "ca"), *file = path2(home, CREDS_FILE);
    make_source(src, "3.0", "c");
    static struct lines l;
    struct err *e = NULL;
    char *const env1[] = {"ANTHROPIC_API_KEY=" KEY_ANT,
                          "GEMINI_API_KEY=",
                          "GOOGLE_API_KEY=" KEY_GOO,
                          "GITHUB_TOKEN=" KEY_GH,
                          "OPENAI_API_KEY=bad key value",
                          "PATH=/usr/bin",
                          NULL};
    is_int(setup_with(home, run, src, env1, false, &l, &e), 0, "setup with keys: %s",
           e ? err_msg(e) : "");
    char want[512];
    snprintf(want, sizeof(want),
             "[ok] credentials: stored anthropic, google, github in %s (0600)\n", file);
    ok(strstr(l.text, want) != NULL, "stored providers listed");
    ok(strstr(l.text, "[warn] credentials: OPENAI_API_KEY ignored: the openai secret may only") !=
           NULL,
       "a bad value is reported by variable name");
    ok(!strstr(l.text, KEY_ANT) && !strstr(l.text, KEY_GOO) && !strstr(l.text, KEY_GH) &&
           !strstr(l.text, "bad key"),
       "no key value is printed");
    is_int(mode_of(home, CREDS_FILE), 0600, "credentials.toml 0600");
    struct creds *c = creds_load(home, NULL);
    ok(c && strcmp(creds_secret(c, CREDS_ANTHROPIC), KEY_ANT) == 0 &&
           strcmp(creds_secret(c, CREDS_GOOGLE), KEY_GOO) == 0 &&
           strcmp(creds_secret(c, CREDS_GITHUB), KEY_GH) == 0 &&
           creds_secret(c, CREDS_OPENAI) == NULL,
       "stored values; GITHUB_TOKEN and GOOGLE_API_KEY as fallbacks");
    creds_free(c);

    snprintf(want, sizeof(want), "[ok] ca: created %s/ca.crt (install id ", cadir);
    ok(strstr(l.text, want) && strstr(l.text, "; telemetry key created\n"), "ca created");
    is_int(mode_of(cadir, ""), 0700, "ca dir 0700");
    is_int(mode_of(cadir, CA_KEY_FILE), 0600, "ca.key 0600");
    is_int(mode_of(cadir, CA_CERT_FILE), 0644, "ca.crt 0644");
    is_int(mode_of(cadir, CREDS_HMAC_KEY_FILE), 0600, "telemetry.key 0600");
    ok(cn_has_uuid(cadir), "CN is 'capsem MITM CA <random id>'");
    char fp1[96], fp2[96];
    ca_fp(l.text, fp1);
    ok(strlen(fp1) == 95, "fingerprint shown: %s", fp1);
    uint8_t key1[32], key2[32];
    creds_hmac_key(home, key1, NULL);

    is_int(setup_with(home, run, src, env1, false, &l, NULL), 0, "second run");
    snprintf(want, sizeof(want), "[ok] credentials: anthropic, google, github unchanged in %s\n",
             file);
    ok(strstr(l.text, want) != NULL, "unchanged keys");
    ca_fp(l.text, fp2);
    snprintf(want, sizeof(want), "[ok] ca: %s/ca.crt kept (SHA-256 ", cadir);
    ok(strstr(l.text, want) && strcmp(fp1, fp2) == 0 && !strstr(l.text, "telemetry key created"),
       "CA kept, same fingerprint");

    char *const env2[] = {"GEMINI_API_KEY=" KEY_GEM, "GOOGLE_API_KEY=" KEY_GOO,
                          "ANTHROPIC_API_KEY=" KEY_ANT, NULL};
    is_int(setup_with(home, run, src, env2, false, &l, NULL), 0, "third run, new google key");
    snprintf(want, sizeof(want),
             "[ok] credentials: stored google in %s (0600); anthropic unchanged\n", file);
    ok(strstr(l.text, want) != NULL, "stored one, one unchanged");
    c = creds_load(home, NULL);
    ok(c && strcmp(creds_secret(c, CREDS_GOOGLE), KEY_GEM) == 0 &&
           strcmp(creds_secret(c, CREDS_GITHUB), KEY_GH) == 0,
       "GEMINI_API_KEY wins over GOOGLE_API_KEY; github kept");
    creds_free(c);

    char *const none[] = {"HOME=/root", NULL};
    is_int(setup_with(home, run, src, none, true, &l, &e), 0, "rotate: %s", e ? err_msg(e) : "");
    snprintf(want, sizeof(want),
             "[ok] credentials: no API keys in the environment; %s holds "
             "anthropic, google, github\n",
             file);
    ok(strstr(l.text, want) != NULL, "no keys in env: stored ones listed");
    ca_fp(l.text, fp2);
    snprintf(want, sizeof(want), "[ok] ca: replaced %s/ca.crt (install id ", cadir);
    ok(strstr(l.text, want) && strlen(fp2) == 95 && strcmp(fp1, fp2) != 0 &&
           strstr(l.text, "running VMs keep theirs until restarted"),
       "--rotate-ca: a new CA");
    is_int(mode_of(cadir, "ca.key.old"), 0600, "previous key kept as ca.key.old");
    creds_hmac_key(home, key2, NULL);
    ok(memcmp(key1, key2, 32) == 0, "the telemetry key survives a CA rotation");

    /* A group-readable credentials.toml: refused when keys are to be
     * stored, a warning otherwise. */
    chmod(file, 0644);
    ok(setup_with(home, run, src, env1, false, &l, &e) < 0 && e &&
           strstr(err_msg(e), "credentials: ") && strstr(err_msg(e), "chmod 600"),
       "storing into a group-readable file fails: %s", e ? err_msg(e) : "");
    err_free(e), e = NULL;
    is_int(setup_with(home, run, src, none, false, &l, NULL), 0, "no keys: setup goes on");
    ok(strstr(l.text, "[warn] credentials: ") && strstr(l.text, "chmod 600"),
       "and warns about the mode");
    chmod(file, 0600);

    /* A CA key with group/other bits: setup stops at the ca step. */
    char *cakey = path2(cadir, CA_KEY_FILE);
    chmod(cakey, 0640);
    ok(setup_with(home, run, src, none, false, &l, &e) < 0 && e && strstr(err_msg(e), "ca: ") &&
           strstr(err_msg(e), "chmod 600"),
       "a readable CA key stops setup: %s", e ? err_msg(e) : "");
    err_free(e);
    chmod(cakey, 0600);
    free(cakey);
    free(cadir);
    free(file);
    free(home);
    free(run);
    free(src);
}

static void test_sources(void)
{
    struct err *e = NULL;
    char *s = cli_assets_source("https://example.com/a", &e);
    ok(!s && e && strstr(err_msg(e), "directory only"), "URL sources refused");
    err_free(e);
    setenv("CAPSEM_ASSETS_SOURCE", "/x/y", 1);
    s = cli_assets_source(NULL, NULL);
    is_str(s, "/x/y", "CAPSEM_ASSETS_SOURCE used");
    free(s);
    s = cli_assets_source("/a/b", NULL);
    is_str(s, "/a/b", "--assets-from wins");
    free(s);
    unsetenv("CAPSEM_ASSETS_SOURCE");
    char *t = cli_user_toml_template();
    ok(t && strstr(t, "[vm]") && strstr(t, "# ram_mb = 2048") && strstr(t, "# auto_start = true"),
       "user.toml template");
    free(t);
}

static void test_svcctl(void)
{
    char *u = cli_unit_text("/opt/capsem/bin");
    ok(u && strstr(u, "[Unit]\nDescription=Capsem sandbox service\n") &&
           strstr(u, "\nExecStart=/opt/capsem/bin/capsem-service --foreground\n") &&
           strstr(u, "\nRestart=on-failure\n") && strstr(u, "\nRestartSec=2\n") &&
           strstr(u, "\nKillMode=process\n") && strstr(u, "[Install]\nWantedBy=default.target\n"),
       "unit text");
    free(u);
    char *cfg = path2(root, "xdg");
    setenv("XDG_CONFIG_HOME", cfg, 1);
    char *p = cli_unit_path(NULL);
    char *want = path2(cfg, "systemd/user/capsem.service");
    is_str(p, want, "unit path under XDG_CONFIG_HOME");
    ok(!cli_unit_installed(), "not installed");

    /* A fake systemctl on PATH records its arguments. */
    char *bin = path2(root, "bin"), *log = path2(root, "systemctl.log"),
         *sc = path2(bin, "systemctl");
    mkdir_p(bin, 0755, NULL);
    char script[512];
    snprintf(script, sizeof(script),
             "#!/bin/sh\necho \"$@\" >> %s\n[ \"$2\" = fail ] && exit 3\nexit 0\n", log);
    write_file(sc, script);
    chmod(sc, 0755);
    const char *old_path = getenv("PATH");
    char *path = NULL;
    if (asprintf(&path, "%s:%s", bin, old_path ? old_path : "/usr/bin:/bin") < 0)
        abort();
    setenv("PATH", path, 1);
    unsetenv("CAPSEM_HOME");
    is_int(cli_unit_install("/opt/capsem/bin", NULL), 0, "unit install");
    ok(cli_unit_installed() && cli_unit_applies(), "installed and applies without CAPSEM_HOME");
    setenv("CAPSEM_RUN_DIR", "/tmp/x", 1);
    ok(!cli_unit_applies(), "does not apply with CAPSEM_RUN_DIR");
    is_str(cli_custom_home_var(), "CAPSEM_RUN_DIR", "custom home variable named");
    unsetenv("CAPSEM_RUN_DIR");
    struct err *e = NULL;
    const char *failing[] = {"fail", NULL};
    ok(cli_systemctl(failing, &e) < 0 && e &&
           strcmp(err_msg(e), "systemctl --user fail failed (exit status 3)") == 0,
       "systemctl failure reported: %s", e ? err_msg(e) : "");
    err_free(e);
    is_int(cli_unit_uninstall(NULL), 0, "unit uninstall");
    ok(!exists(want), "unit file removed");
    _cleanup_free_ char *calls = NULL;
    file_read_all(log, 4096, &calls, NULL, NULL);
    is_str(calls,
           "--user daemon-reload\n--user enable --now capsem\n--user fail\n"
           "--user disable --now capsem\n--user daemon-reload\n",
           "systemctl calls, argv only");
    setenv("PATH", old_path ? old_path : "/usr/bin:/bin", 1);
    unsetenv("XDG_CONFIG_HOME");
    free(path);
    free(sc);
    free(log);
    free(bin);
    free(want);
    free(p);
    free(cfg);
}

static void test_service_pid(void)
{
    char *dir = path2(root, "run-pid");
    mkdir_p(dir, 0700, NULL);
    char *pidf = path2(dir, "service.pid");
    char text[32];
    snprintf(text, sizeof(text), "%d\n", (int)getpid());
    write_file(pidf, text);
    is_int(cli_service_pid(dir), 0, "a pid that is not capsem-service is ignored");
    pid_t child = fork();
    if (child == 0) {
        char *const argv[] = {"capsem-service", "30", NULL};
        execv("/bin/sleep", argv);
        _exit(127);
    }
    /* argv[0] is visible once exec happened. */
    uint64_t deadline = time_mono_ms() + 5000;
    snprintf(text, sizeof(text), "%d\n", (int)child);
    write_file(pidf, text);
    while (cli_service_pid(dir) != child && time_mono_ms() < deadline)
        usleep(10000);
    is_int(cli_service_pid(dir), child, "capsem-service pid found");
    is_int(cli_service_kill_wait(child, 5000, NULL), 0, "SIGTERM and wait");
    ok(kill(child, 0) < 0 && errno == ESRCH, "process gone");
    is_int(cli_stop_marker(dir, true, NULL), 0, "marker set");
    char *m = path2(dir, "service.explicitly-stopped");
    ok(exists(m), "marker exists");
    is_int(cli_stop_marker(dir, false, NULL), 0, "marker cleared");
    ok(!exists(m), "marker gone");
    is_int(cli_stop_marker(dir, false, NULL), 0, "clearing twice is fine");
    free(m);
    free(pidf);
    free(dir);
}

static void test_doctor(void)
{
    char names[128];
    const char *dev = "Inter-|   Receive                            |  Transmit\n"
                      " face |bytes    packets errs drop fifo frame compressed multicast|bytes\n"
                      "    lo:       0       0    0    0    0     0          0         0\n"
                      "dummy0:       0       0    0    0    0     0          0         0\n";
    is_int(cli_ifaces_parse(dev, names, sizeof(names)), 0, "lo and dummy0 allowed");
    is_str(names, "lo, dummy0", "interface names");
    const char *dev2 = "Inter-|   Receive\n face |bytes\n    lo: 0 0\n  eth0: 1 2\n";
    is_int(cli_ifaces_parse(dev2, names, sizeof(names)), 1, "eth0 is not allowed");
    is_str(names, "lo, eth0", "names listed");
    is_int(cli_ifaces_parse("garbage", names, sizeof(names)), -1, "not /proc/net/dev");

    uint64_t bytes = 0;
    char *deep = path2(root, "a/b/c");
    ok(cli_free_bytes(deep, &bytes, NULL) == 0 && bytes > 0,
       "free bytes of a missing path's parent");
    free(deep);

    char *dst = path2(root, "home/assets");
    struct buf b;
    buf_init(&b, 4096);
    ok(cli_assets_check(dst, &b, NULL) == 0 && b.len &&
           strstr((char *)buf_head(&b), "v2.0 current"),
       "installed assets verify");
    buf_free(&b);
    char *k = path2(dst, "v2.0/vmlinux");
    chmod(k, 0644);
    write_file(k, "vmlinux of 2.0 (X)\n");
    struct err *e = NULL;
    buf_init(&b, 4096);
    ok(cli_assets_check(dst, &b, &e) < 0 && e && strstr(err_msg(e), "does not match"),
       "a changed asset is found: %s", e ? err_msg(e) : "");
    err_free(e);
    buf_free(&b);
    free(k);
    free(dst);

    char *q = path2(root, "bin/qemu-fake");
    write_file(q, "#!/bin/sh\necho 'QEMU emulator version 9.9.9'\necho 'Copyright'\n");
    chmod(q, 0755);
    char v[128];
    char *full = NULL;
    ok(cli_qemu_version(q, &full, v, sizeof(v), NULL) == 0 &&
           strcmp(v, "QEMU emulator version 9.9.9") == 0,
       "qemu version line");
    free(full);
    full = NULL;
    e = NULL;
    ok(cli_qemu_version("qemu-none-such", &full, v, sizeof(v), &e) < 0 && e &&
           strstr(err_msg(e), "not found"),
       "missing qemu reported");
    err_free(e);
    free(full);
    free(q);
}

/* ---------- host lists: apt_hosts, the npm registry host, vm.json ---------- */

#define FAKE_SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* A manifest (files not needed to load it) whose code rootfs has apt_hosts. */
static int load_with_apt_hosts(const char *dir, json_t *hosts, struct assets *a, struct err **e)
{
    mkdir_p(dir, 0700, NULL);
    json_t *f = json_pack("{s:s, s:s, s:i}", "file", "x", "sha256", FAKE_SHA, "size", 1);
    json_t *code = json_deep_copy(f);
    if (hosts)
        json_object_set_new(code, "apt_hosts", hosts);
    json_t *m = json_pack("{s:i, s:s, s:{s:{s:O, s:O, s:{s:o, s:O}}}}", "format", 1, "current",
                          "9.0", "versions", "9.0", "kernel", f, "initrd", f, "rootfs", "code",
                          code, "minimal", f);
    char *p = path2(dir, "manifest.json");
    json_dump_file(m, p, 0);
    json_decref(m);
    json_decref(f);
    free(p);
    return assets_load(dir, a, e);
}

static void test_assets_apt_hosts(void)
{
    char *dir = path2(root, "apt");
    struct assets a;
    struct err *e = NULL;
    int rc = load_with_apt_hosts(dir, json_pack("[s, s]", "Deb.Debian.ORG.", "10.1.2.3"), &a, &e);
    is_int(rc, 0, "manifest with apt_hosts loads: %s", e ? err_msg(e) : "");
    const struct asset_version *v = assets_find(&a, "9.0");
    const struct asset_rootfs *code = v ? assets_rootfs_entry(v, "code") : NULL;
    const struct asset_rootfs *min = v ? assets_rootfs_entry(v, "minimal") : NULL;
    ok(code && code->napt_hosts == 2 && strcmp(code->apt_hosts[0], "deb.debian.org") == 0 &&
           strcmp(code->apt_hosts[1], "10.1.2.3") == 0 && !code->apt_hosts[2],
       "apt_hosts normalised (lowercase, no trailing dot), NULL-terminated");
    ok(min && min->napt_hosts == 0 && !min->apt_hosts, "a rootfs without apt_hosts has none");
    ok(code && assets_rootfs(v, "code") == &code->f && !assets_rootfs_entry(v, "nope"),
       "assets_rootfs is the entry's file; an unknown profile has no entry");
    assets_free(&a);

    json_t *many = json_array();
    for (int i = 0; i <= ASSETS_MAX_APT_HOSTS; i++)
        json_array_append_new(many, json_sprintf("h%d.example", i));
    struct {
        json_t *hosts;
        const char *want;
    } bad[] = {
        {json_pack("[s]", "bad host"), "apt_hosts entry 0 is not a host name"},
        {json_pack("[s, i]", "ok.example", 7),
         "apt_hosts entry 1 is not a host name (not a string)"},
        {json_pack("[s]", "*.debian.org"), "apt_hosts entry 0 is not a host name"},
        {json_string("deb.debian.org"), "apt_hosts must be an array"},
        {many, "at most 64 host names"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        e = NULL;
        rc = load_with_apt_hosts(dir, bad[i].hosts, &a, &e);
        ok(rc < 0 && e && e->status == 412 && strstr(err_msg(e), bad[i].want) &&
               strstr(err_msg(e), "rootfs code"),
           "bad apt_hosts refused: %s", e ? err_msg(e) : "(loaded)");
        err_free(e);
    }
    free(dir);
}

static void test_npm_url(void)
{
    const char *good[][2] = {
        {"https://registry.npmjs.org/\n", "registry.npmjs.org"},
        {"  HTTPS://Npm.Corp.Example:8443/artifactory/api/npm/ \r\n", "npm.corp.example"},
        {"http://verdaccio.local:4873", "verdaccio.local"},
        {"https://registry.example.com.?x=1", "registry.example.com"},
        {"https://r.example#frag", "r.example"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
        char host[256] = "unset";
        struct err *e = NULL;
        int n = cli_npm_registry_host(good[i][0], host, &e);
        ok(n == (int)strlen(good[i][1]) && strcmp(host, good[i][1]) == 0, "%s -> %s (%s)",
           good[i][1], host, e ? err_msg(e) : "ok");
        err_free(e);
    }
    const char *bad[][2] = {
        {"registry.npmjs.org", "not an http(s) URL"},
        {"ftp://registry.npmjs.org/", "not an http(s) URL"},
        {"undefined\n", "not an http(s) URL"},
        {"https://user:secret@registry.example/", "user information"},
        {"https://[::1]:4873/", "IPv6"},
        {"https://127.0.0.1:4873/", "is an IP address"},
        {"https://registry.example:0/", "bad port"},
        {"https://registry.example:70000/", "bad port"},
        {"https://registry.example:+80/", "bad port"},
        {"https://registry.example:/", "bad port"},
        {"https:///path", "empty host name"},
        {"https://reg istry.example/", "spaces or control"},
        {"https://registry.example/\nhttps://other/", "spaces or control"},
        {"https://bad_host!.example/", "letters, digits"},
        {"https://regístry.example/", "spaces or control"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char host[256];
        struct err *e = NULL;
        int n = cli_npm_registry_host(bad[i][0], host, &e);
        ok(n < 0 && e && strstr(err_msg(e), bad[i][1]), "bad URL %zu refused: %s", i,
           e ? err_msg(e) : "(accepted)");
        err_free(e);
    }
}

/* bin/npm in dir with the given shell body. */
static char *fake_npm(const char *dir, const char *body)
{
    char *bin = path2(dir, "bin");
    mkdir_p(bin, 0700, NULL);
    char *p = path2(bin, "npm");
    char text[1024];
    snprintf(text, sizeof(text), "#!/bin/sh\n%s\n", body);
    if (file_write_atomic(p, text, strlen(text), 0755, NULL) < 0)
        abort();
    free(p);
    return bin;
}

/* Runs setup with PATH=bin; host = the setup.json npm host ("" if none). */
static void setup_npm_run(const char *home, const char *bin, unsigned timeout_ms, struct lines *l,
                          char host[256])
{
    char *run = path2(home, "run"), *src = path2(root, "src"), pathvar[512];
    snprintf(pathvar, sizeof(pathvar), "PATH=%s", bin);
    char *const env[] = {pathvar, NULL};
    l->len = 0;
    l->text[0] = '\0';
    struct cli_setup s = {.home = home,
                          .run_dir = run,
                          .assets_from = src,
                          .env = env,
                          .npm_timeout_ms = timeout_ms,
                          .step = on_step,
                          .step_arg = l};
    struct err *e = NULL;
    if (cli_setup_run(&s, &e) < 0)
        diag("setup failed: %s", err_msg(e));
    err_free(e);
    char *sj = path2(home, "setup.json");
    json_t *j = json_load_file(sj, 0, NULL);
    const char *h = json_string_value(json_object_get(j, "npm_registry_host"));
    free(sj);
    snprintf(host, 256, "%s", h ? h : "");
    json_decref(j);
    ok(strcmp(host, s.npm_host) == 0, "setup.json holds what the run found (%s)", host);
    cli_setup_free(&s);
    free(run);
    free(src);
}

static bool gone_or_zombie(pid_t pid)
{
    char p[64];
    _cleanup_free_ char *st = NULL;
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    if (file_read_all(p, 4096, &st, NULL, NULL) < 0)
        return true;
    return strrchr(st, ')') && strncmp(strrchr(st, ')'), ") Z", 3) == 0;
}

static pid_t read_pid(const char *path)
{
    _cleanup_free_ char *text = NULL;
    int64_t v = 0;
    if (file_read_all(path, 64, &text, NULL, NULL) == 0)
        text[strcspn(text, "\n")] = '\0';
    return text && parse_int64(text, 1, INT32_MAX, &v) == 0 ? (pid_t)v : -1;
}

static void test_setup_npm(void)
{
    char *home = path2(root, "npm-home"), host[256], body[512], got[256];
    struct lines l;
    char *bin = fake_npm(home, "[ \"$*\" = 'config get registry' ] || exit 3\n"
                               "echo 'HTTPS://Registry.Corp.Example:8443/npm/'");
    setup_npm_run(home, bin, 0, &l, host);
    is_str(host, "registry.corp.example", "npm registry host recorded in setup.json");
    ok(strstr(l.text, "[ok] npm: registry host registry.corp.example (from ") &&
           strstr(l.text, "/bin/npm config get registry)\n"),
       "[ok] npm line names the host and the npm run");
    struct err *e = NULL;
    is_int(cli_setup_npm_host(home, got, &e), 1, "setup.json read back");
    is_str(got, "registry.corp.example", "read back host");

    free(fake_npm(home, "echo 'https://me:pw@registry.example/'"));
    setup_npm_run(home, bin, 0, &l, host);
    ok(!*host && strstr(l.text, "[warn] npm: the registry URL carries user information; not "
                                "recorded; the @npm host list stays empty\n"),
       "a URL with user info is not recorded");
    is_int(cli_setup_npm_host(home, got, NULL), 0, "nothing to read back");

    free(fake_npm(home, "echo oops >&2; exit 7"));
    setup_npm_run(home, bin, 0, &l, host);
    ok(!*host && strstr(l.text, "[warn] npm: npm config get registry failed (exit status 7)"),
       "npm failing is a warning");

    char *pid1 = path2(home, "npm.pid"), *pid2 = path2(home, "helper.pid");
    snprintf(body, sizeof(body), "/bin/sleep 30 & echo $! > %s\necho $$ > %s\nexec /bin/sleep 30",
             pid2, pid1);
    free(fake_npm(home, body));
    uint64_t t0 = time_mono_ms();
    setup_npm_run(home, bin, 300, &l, host);
    uint64_t took = time_mono_ms() - t0;
    ok(!*host && took >= 300 && took < 20000 &&
           strstr(l.text, "[warn] npm: npm config get registry did not answer within 1 s"),
       "npm hanging: timed out (%llu ms)", (unsigned long long)took);
    pid_t p1 = read_pid(pid1), p2 = read_pid(pid2);
    ok(p1 > 0 && kill(p1, 0) < 0 && errno == ESRCH, "npm killed and reaped");
    uint64_t deadline = time_mono_ms() + 5000;
    while (p2 > 0 && !gone_or_zombie(p2) && time_mono_ms() < deadline)
        usleep(10000); /* the helper is init's to reap: wait for its death */
    ok(p2 > 0 && gone_or_zombie(p2), "npm's helper in its process group killed too");

    /* What the service reads: errors are reported, not guessed around. */
    char *sj = path2(home, "setup.json");
    const char *bad[][2] = {{"{\"npm_registry_host\": \"10.0.0.1\"}", "is an IP address"},
                            {"{\"npm_registry_host\": 5}", "must be a string"},
                            {"{", "setup.json:1: "}};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        write_file(sj, bad[i][0]);
        e = NULL;
        int rc = cli_setup_npm_host(home, got, &e);
        ok(rc < 0 && e && strstr(err_msg(e), bad[i][1]) && !*got, "setup.json %s refused: %s",
           bad[i][0], e ? err_msg(e) : "");
        err_free(e);
    }
    unlink(sj);
    is_int(cli_setup_npm_host(home, got, NULL), 0, "no setup.json: no host");
    free(sj);
    free(pid1);
    free(pid2);
    free(bin);
    free(home);
}

static void test_vmconfig_hosts(void)
{
    char *apt[] = {"deb.debian.org", "security.debian.org"}, *npm[] = {"registry.npmjs.org"};
    struct vm_config out,
        in = {.accel = "tcg", .apt_hosts = apt, .napt_hosts = 2, .npm_hosts = npm, .nnpm_hosts = 1};
    in.id = in.name = in.profile = in.kernel = in.initrd = in.rootfs = in.vm_dir = "x";
    in.instance_sock = in.ws_sock = in.ready_path = in.template_dir = in.qemu_binary = "x";
    json_t *j = vm_config_to_json(&in);
    struct err *e = NULL;
    int rc = vm_config_from_json(j, &out, &e);
    is_int(rc, 0, "vm.json with host lists loads: %s", e ? err_msg(e) : "");
    ok(out.napt_hosts == 2 && strcmp(out.apt_hosts[0], "deb.debian.org") == 0 &&
           strcmp(out.apt_hosts[1], "security.debian.org") == 0 && !out.apt_hosts[2] &&
           out.nnpm_hosts == 1 && strcmp(out.npm_hosts[0], "registry.npmjs.org") == 0,
       "apt_hosts and npm_hosts round-trip");
    vm_config_free(&out);
    ok(!out.apt_hosts && !out.npm_hosts && !out.napt_hosts, "freed");

    in.napt_hosts = in.nnpm_hosts = 0;
    json_decref(j);
    j = vm_config_to_json(&in);
    ok(json_array_size(json_object_get(j, "apt_hosts")) == 0 &&
           json_is_array(json_object_get(j, "npm_hosts")),
       "empty lists written as []");
    json_object_del(j, "apt_hosts");
    json_object_del(j, "npm_hosts");
    is_int(vm_config_from_json(j, &out, NULL), 0, "vm.json without host lists loads");
    ok(out.napt_hosts == 0 && out.nnpm_hosts == 0, "absent lists are empty");
    vm_config_free(&out);

    json_t *many = json_array();
    for (int i = 0; i <= VM_CONFIG_MAX_HOSTS; i++)
        json_array_append_new(many, json_sprintf("h%d.example", i));
    struct {
        const char *key;
        json_t *v;
        const char *want;
    } bad[] = {
        {"apt_hosts", many, "apt_hosts holds 65 hosts (at most 64)"},
        {"npm_hosts", json_pack("[i]", 3), "npm_hosts entries must be host names"},
        {"npm_hosts", json_pack("[s]", ""), "npm_hosts entries must be host names"},
        {"apt_hosts", json_string("deb.debian.org"), "apt_hosts must be an array"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        json_object_set_new(j, bad[i].key, bad[i].v);
        e = NULL;
        rc = vm_config_from_json(j, &out, &e);
        ok(rc < 0 && e && strstr(err_msg(e), bad[i].want), "refused: %s",
           e ? err_msg(e) : "(loaded)");
        err_free(e);
        json_object_del(j, bad[i].key);
    }
    json_decref(j);
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/capsem-test-setup-%d", (int)getpid());
    mkdir(root, 0700);
    test_install();
    test_cleanup();
    test_in_use();
    test_sources();
    test_setup_run();
    test_setup_keys_ca();
    test_assets_apt_hosts();
    test_npm_url();
    test_setup_npm();
    test_vmconfig_hosts();
    test_svcctl();
    test_service_pid();
    test_doctor();
    const char *argv[] = {"rm", "-rf", root, NULL};
    int st;
    cli_run_wait(argv, &st, NULL);
    return done_testing();
}
