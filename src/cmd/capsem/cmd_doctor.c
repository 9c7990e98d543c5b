/* capsem doctor: checks the installation and boots a test VM (surface.md
 * section 4 "doctor checks"). Host-side checks are in src/lib/cli/doctor.c. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/paths.h"
#include "base/util.h"
#include "cli.h"
#include "cli/autostart.h"
#include "cli/doctor.h"
#include "cli/format.h"
#include "config/settings.h"
#include "vm/qemu.h"

enum level { OK, WARN, FAIL };

struct doctor {
    struct cli_ctx *ctx;
    struct cli_client *c; /* NULL when the service is not reachable */
    json_t *status;       /* GET /status, or NULL */
    int fails;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = sig;
}

static void report(struct doctor *d, enum level l, const char *check, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void report(struct doctor *d, enum level l, const char *check, const char *fmt, ...)
{
    static const char *const tags[] = {"ok", "warn", "fail"};
    va_list ap;
    va_start(ap, fmt);
    printf("[%s] %s: ", tags[l], check);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
    d->fails += l == FAIL;
}

/* ---------- host checks ---------- */

static void check_kvm(struct doctor *d)
{
    const char *accel = json_string_value(json_object_get(d->status, "accel"));
    if (accel && strcmp(accel, "kvm") == 0) {
        report(d, OK, "kvm", "VMs run with KVM");
        return;
    }
    if (accel) {
        report(d, WARN, "kvm",
               "KVM is not usable here: VMs run with TCG software emulation (slow); see "
               "logs/service.log, or add yourself to group kvm");
        return;
    }
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (fd >= 0)
        close(fd);
    report(d, WARN, "kvm", "%s; the service was not reachable to confirm that it runs guests",
           fd >= 0 ? "/dev/kvm opens" : "/dev/kvm cannot be opened: VMs would use TCG");
}

/* hypervisor.qemu_binary, else qemu-system-<host arch>. malloc'd. */
static char *qemu_binary(const struct doctor *d)
{
    struct settings *s = settings_load(d->ctx->home, NULL);
    const char *set = s ? settings_str(s, "hypervisor.qemu_binary") : NULL;
    char *bin = strdup(set && *set ? set : qemu_default_binary());
    settings_free(s);
    return bin;
}

static void check_qemu(struct doctor *d)
{
    _cleanup_err_ struct err *e = NULL;
    _cleanup_free_ char *path = NULL;
    _cleanup_free_ char *bin = qemu_binary(d);
    char version[256];
    if (!bin || cli_qemu_version(bin, &path, version, sizeof(version), &e) < 0)
        report(d, FAIL, "qemu", "%s", e ? err_msg(e) : "out of memory");
    else
        report(d, OK, "qemu", "%s (%s)", path, version);
}

static void check_assets(struct doctor *d)
{
    _cleanup_free_ char *dir = paths_join(d->ctx->home, "assets");
    _cleanup_err_ struct err *e = NULL;
    struct buf summary;
    buf_init(&summary, 64 * 1024);
    if (!dir || cli_assets_check(dir, &summary, &e) < 0)
        report(d, FAIL, "assets", "%s (fix: capsem setup --force)", e ? err_msg(e) : "ENOMEM");
    else
        report(d, OK, "assets", "%.*s: sha256 verified", (int)summary.len,
               (const char *)buf_head(&summary));
    buf_free(&summary);
}

static void check_service(struct doctor *d, const struct err *conn_err)
{
    _cleanup_free_ char *version = NULL;
    _cleanup_err_ struct err *e = NULL;
    if (!d->c)
        report(d, FAIL, "service", "%s", err_msg(conn_err));
    else if (cli_service_version(d->c, &version, &e) < 0)
        report(d, FAIL, "service", "%s", err_msg(e));
    else if (strcmp(version, CAPSEM_VERSION) != 0)
        report(d, FAIL, "service",
               "capsem-service %s at %s, but this capsem is %s (restart it: capsem service stop "
               "&& capsem service start)",
               version, d->ctx->socket, CAPSEM_VERSION);
    else
        report(d, OK, "service", "capsem-service %s at %s", version, d->ctx->socket);
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    return buf_append(ctx, data, size * n) < 0 ? 0 : size * n;
}

/* GET http://127.0.0.1:<port>/health must answer {ok:true}. */
static int gateway_health(const char *port, struct err **errp)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%.16s/health", port);
    CURL *h = curl_easy_init();
    struct buf b;
    buf_init(&b, 64 * 1024);
    long status = 0;
    int rc = -1;
    if (h && curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b) == CURLE_OK &&
        curl_easy_perform(h) == CURLE_OK &&
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status == 200) {
        json_t *j = json_loadb((const char *)buf_head(&b), b.len, 0, NULL);
        rc = json_is_true(json_object_get(j, "ok")) ? 0 : -1;
        json_decref(j);
    }
    if (rc < 0)
        err_set(errp, EIO, "%s did not answer {\"ok\":true}", url);
    curl_easy_cleanup(h);
    buf_free(&b);
    return rc;
}

static void check_gateway(struct doctor *d)
{
    _cleanup_free_ char *bin = paths_find_binary("capsem-gateway");
    if (!bin) {
        report(d, WARN, "gateway", "not part of this version");
        return;
    }
    _cleanup_free_ char *port_path = paths_join(d->ctx->run_dir, "gateway.port");
    _cleanup_free_ char *token_path = paths_join(d->ctx->run_dir, "gateway.token");
    _cleanup_free_ char *port = NULL;
    _cleanup_err_ struct err *e = NULL;
    struct stat st;
    if (!port_path || file_read_all(port_path, 32, &port, NULL, NULL) < 0) {
        report(d, FAIL, "gateway", "not running (no %s)", port_path ? port_path : "gateway.port");
        return;
    }
    port[strcspn(port, "\r\n")] = '\0';
    if (gateway_health(port, &e) < 0)
        report(d, FAIL, "gateway", "%s", err_msg(e));
    else if (!token_path || stat(token_path, &st) < 0 || (st.st_mode & 0777) != 0600)
        report(d, FAIL, "gateway", "%s is missing or not mode 0600", token_path);
    else
        report(d, OK, "gateway", "http://127.0.0.1:%s/health ok, token 0600", port);
}

static void check_disk(struct doctor *d)
{
    uint64_t free_bytes = 0;
    _cleanup_err_ struct err *e = NULL;
    char size[24];
    if (cli_free_bytes(d->ctx->run_dir, &free_bytes, &e) < 0) {
        report(d, FAIL, "disk", "%s", err_msg(e));
        return;
    }
    cli_format_size(free_bytes, size, sizeof(size));
    if (free_bytes < CLI_DOCTOR_MIN_FREE)
        report(d, FAIL, "disk", "only %s free under %s (at least 2.0G needed)", size,
               d->ctx->run_dir);
    else
        report(d, OK, "disk", "%s free under %s", size, d->ctx->run_dir);
}

/* ---------- the test VM ---------- */

/* Runs command in the VM; *out gets its stdout (malloc'd). */
static int vm_exec(struct doctor *d, const char *id, const char *command, char **out,
                   struct err **errp)
{
    json_auto_t *body = json_pack("{s:s, s:i}", "command", command, "timeout_secs", 60);
    json_auto_t *resp = NULL;
    _cleanup_free_ char *path = cli_vm_path(id, "/exec", errp);
    if (!path || cli_client_call(d->c, "POST", path, body, CLI_NO_TIMEOUT, &resp, errp) < 0)
        return -1;
    json_int_t code = json_integer_value(json_object_get(resp, "exit_code"));
    const char *so = json_string_value(json_object_get(resp, "stdout"));
    const char *se = json_string_value(json_object_get(resp, "stderr"));
    if (code != 0)
        return err_set(errp, EIO, "`%s` exited %lld: %.200s", command, (long long)code,
                       se ? se : "");
    *out = strdup(so ? so : "");
    return *out ? 0 : err_set(errp, ENOMEM, "out of memory");
}

/* One guest check: runs command, compares its output; false when it failed. */
static bool guest_check(struct doctor *d, const char *id, const char *command, const char *want,
                        char **out, const char *what)
{
    _cleanup_err_ struct err *e = NULL;
    if (vm_exec(d, id, command, out, &e) < 0) {
        report(d, FAIL, "vm", "%s: %s", what, err_msg(e));
        return false;
    }
    if (want && strcmp(*out, want) != 0) {
        report(d, FAIL, "vm", "%s: `%s` printed \"%.100s\"", what, command, *out);
        return false;
    }
    return true;
}

static void vm_checks(struct doctor *d, const char *id, const char *name, uint64_t t0)
{
    _cleanup_free_ char *ok = NULL, *arch = NULL, *root = NULL, *net = NULL;
    if (!guest_check(d, id, "echo ok", "ok\n", &ok, name))
        return;
    report(d, OK, "vm", "%s (1 CPU, 1024M) booted and ran `echo ok` in %.1f s", name,
           (double)(time_mono_ms() - t0) / 1000.0);
    struct utsname u;
    uname(&u);
    if (guest_check(d, id, "uname -m", NULL, &arch, "guest arch")) {
        arch[strcspn(arch, "\n")] = '\0';
        if (strcmp(arch, u.machine) != 0)
            report(d, FAIL, "vm", "guest arch %s differs from the host's %s", arch, u.machine);
        else
            report(d, OK, "vm", "guest arch %s, as the host", arch);
    }
    if (guest_check(d, id, "f=/root/.capsem-doctor; echo w >$f && cat $f && rm -f $f", "w\n", &root,
                    "/root writable"))
        report(d, OK, "vm", "/root is writable");
    if (!guest_check(d, id, "cat /proc/net/dev", NULL, &net, "network interfaces"))
        return;
    char names[512];
    int bad = cli_ifaces_parse(net, names, sizeof(names));
    if (bad < 0)
        report(d, FAIL, "vm", "network interfaces: /proc/net/dev unreadable");
    else if (bad > 0)
        report(d, FAIL, "vm", "network interfaces %s: only lo and dummy0 may exist", names);
    else
        report(d, OK, "vm", "network interfaces: %s (no way out but capsem)", names);
}

/* Returns 0, or 128 + N when signal N interrupted the checks. The VM is
 * deleted in every case. */
static int check_vm(struct doctor *d)
{
    if (!d->c) {
        report(d, FAIL, "vm", "not tried: the service is not reachable");
        return 0;
    }
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *body =
        json_pack("{s:i, s:i, s:I}", "cpus", 1, "ram_mb", 1024, "owner_pid", (json_int_t)getpid());
    json_auto_t *vm = NULL;
    uint64_t t0 = time_mono_ms();
    /* Not abortable: once asked, the VM is created; we then delete it. */
    if (cli_client_call(d->c, "POST", "/vms/create", body, CLI_CALL_TIMEOUT, &vm, &e) < 0) {
        report(d, FAIL, "vm", "cannot create a test VM: %s", err_msg(e));
    } else {
        const char *id = json_string_value(json_object_get(vm, "id"));
        const char *name = json_string_value(json_object_get(vm, "name"));
        cli_client_set_abort(d->c, &interrupted);
        if (!interrupted && id)
            vm_checks(d, id, name ? name : id, t0);
        cli_client_set_abort(d->c, NULL);
        _cleanup_free_ char *path = id ? cli_vm_path(id, "/delete", &e) : NULL;
        if (path && cli_client_call(d->c, "DELETE", path, NULL, CLI_CALL_TIMEOUT, NULL, &e) < 0)
            report(d, FAIL, "vm", "cannot delete test VM %s: %s", name ? name : id, err_msg(e));
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return interrupted ? 128 + interrupted : 0;
}

static int run_doctor(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    struct doctor d = {.ctx = ctx};
    _cleanup_err_ struct err *conn_err = NULL;
    d.c = cli_connect_ex(ctx, false, &conn_err);
    if (d.c && cli_client_call(d.c, "GET", "/status", NULL, CLI_CALL_TIMEOUT, &d.status, NULL) < 0)
        d.status = NULL;
    check_kvm(&d);
    check_qemu(&d);
    check_assets(&d);
    check_service(&d, conn_err);
    check_gateway(&d);
    check_disk(&d);
    int sig = o->quick ? 0 : check_vm(&d);
    json_decref(d.status);
    if (sig) {
        fprintf(stderr, "Interrupted; the test VM was deleted.\n");
        return sig == 128 + SIGINT ? EXIT_INTERRUPTED : sig;
    }
    printf("RESULT: %s\n", d.fails ? "FAIL" : "PASS");
    return d.fails ? EXIT_ERROR : EXIT_OK;
}

static const struct cli_opt doctor_opts[] = {
    {OPT_QUICK, "quick", 0, NULL, "skip the test VM"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_doctor = {
    .name = "doctor",
    .usage = "doctor [--quick]",
    .summary = "Check that everything works",
    .description =
        "Checks KVM (as the service uses it), the QEMU binary, the guest assets (every\n"
        "file re-hashed), the service and its version, the gateway, free disk space\n"
        "under the run directory (2 GiB), then, unless --quick, boots a test VM (1 CPU,\n"
        "1024 MB) that must run `echo ok`, report the host's architecture, have a\n"
        "writable /root and no network interface but lo and dummy0; the VM is deleted\n"
        "afterwards, also on Ctrl-C (exit 130). One [ok]/[warn]/[fail] line per check,\n"
        "then RESULT: PASS (exit 0) or RESULT: FAIL (exit 1).",
    .examples = "  capsem doctor\n"
                "  capsem doctor --quick\n",
    .opts = doctor_opts,
    .nopts = ARRAY_SIZE(doctor_opts),
    .stop_after = -1,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_doctor,
};
