/* Unit tests for installing assets (vm/assets_install), the setup steps
 * (cli/setup), service control helpers (cli/svcctl) and the host-side
 * doctor checks (cli/doctor), all in a scratch directory. */
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

#include "base/paths.h"
#include "base/util.h"
#include "cli/doctor.h"
#include "cli/setup.h"
#include "cli/svcctl.h"
#include "tap.h"
#include "vm/assets.h"
#include "vm/assets_install.h"

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
    char text[4096];
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
    struct cli_setup s = {
        .home = home, .run_dir = run, .assets_from = src, .step = on_step, .step_arg = &l};
    struct err *e = NULL;
    is_int(cli_setup_run(&s, &e), 0, "setup runs: %s", e ? err_msg(e) : "");
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

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/capsem-test-setup-%d", (int)getpid());
    mkdir(root, 0700);
    test_install();
    test_cleanup();
    test_in_use();
    test_sources();
    test_setup_run();
    test_svcctl();
    test_service_pid();
    test_doctor();
    const char *argv[] = {"rm", "-rf", root, NULL};
    int st;
    cli_run_wait(argv, &st, NULL);
    return done_testing();
}
