/* capsem logs and capsem history: what a VM printed and what ran in it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"
#include "cli.h"
#include "cli/format.h"
#include "cli/render.h"

#define FOLLOW_WINDOW   1000 /* lines fetched per poll while following */
#define FOLLOW_POLL_MS  1000
#define HISTORY_DEFAULT 50
#define HISTORY_PAGE    500
#define NET_LOG_DEFAULT 500

static bool opt_net(const struct cmd_opts *o)
{
    return o->net;
}

static bool opt_dns(const struct cmd_opts *o)
{
    return o->dns;
}

static const char *opt_layer(const struct cmd_opts *o)
{
    return o->layer;
}

static const char *opt_since(const struct cmd_opts *o)
{
    return o->since;
}

/* What to ask GET /vms/{id}/history for. */
struct history_filter {
    const char *search; /* NULL: none */
    const char *layer;  /* NULL: all */
    char since[64];     /* "" : none */
};

static int history_filter_init(const struct cmd_opts *o, const char *layer,
                               struct history_filter *f, struct err **errp)
{
    f->search = o->search;
    f->layer = layer;
    f->since[0] = '\0';
    if (opt_since(o) && cli_since_value(opt_since(o), (int64_t)time_real_ms(), f->since,
                                        sizeof(f->since), errp) < 0)
        return -1;
    return 0;
}

static int fetch_history(struct cli_ctx *ctx, const char *ref, int64_t want,
                         const struct history_filter *f, json_t **out, struct err **errp);

/* ---------- logs ---------- */

enum { LOG_PROCESS, LOG_SERIAL, NLOGS };
static const char *const log_field[NLOGS] = {"process_logs", "serial_logs"};
static const char *const log_file[NLOGS] = {"process.log", "serial.log"};

struct logs_view {
    const char *id;
    const char *name;
    bool show[NLOGS];
    bool headers; /* both logs shown */
    int64_t tail;
    struct cli_lines prev[NLOGS];
    int last; /* log whose lines were printed last (-1: none) */
};

static int fetch_logs(struct cli_ctx *ctx, const char *id, int64_t tail, json_t **out,
                      struct err **errp)
{
    char n[24];
    snprintf(n, sizeof(n), "%" PRId64, tail);
    const char *q[] = {"tail", tail > 0 ? n : NULL};
    _cleanup_free_ char *base = cli_vm_path(id, "/logs", errp);
    _cleanup_free_ char *path = base ? cli_path_query(base, q, 1) : NULL;
    if (!path)
        return base ? err_set(errp, ENOMEM, "out of memory") : -1;
    return cli_client_call(ctx->client, "GET", path, NULL, CLI_CALL_TIMEOUT, out, errp);
}

static void print_header(struct logs_view *v, int which)
{
    if (v->headers)
        printf("--- %s (%s) ---\n", log_file[which], v->name);
    v->last = which;
}

/* Whole texts, as the service sent them (a missing final newline added). */
static void print_all(struct logs_view *v, const json_t *resp)
{
    for (int k = 0; k < NLOGS; k++) {
        if (!v->show[k])
            continue;
        const char *text = json_string_value(json_object_get(resp, log_field[k]));
        text = text ? text : "";
        print_header(v, k);
        size_t len = strlen(text);
        fputs(text, stdout);
        if (len && text[len - 1] != '\n')
            fputc('\n', stdout);
    }
}

static void print_lines(const struct cli_lines *l, size_t from)
{
    for (size_t i = from; i < l->n; i++)
        printf("%s\n", l->line[i]);
}

/* Starts following: shows the last v->tail complete lines of each log. */
static int follow_start(struct logs_view *v, const json_t *resp)
{
    for (int k = 0; k < NLOGS; k++) {
        const char *text = json_string_value(json_object_get(resp, log_field[k]));
        if (cli_lines_split(text ? text : "", &v->prev[k]) < 0)
            return -1;
        if (!v->show[k])
            continue;
        size_t n = v->prev[k].n;
        print_header(v, k);
        print_lines(&v->prev[k], n > (size_t)v->tail ? n - (size_t)v->tail : 0);
    }
    fflush(stdout);
    return 0;
}

static int follow_step(struct logs_view *v, const json_t *resp, struct err **errp)
{
    for (int k = 0; k < NLOGS; k++) {
        const char *text = json_string_value(json_object_get(resp, log_field[k]));
        struct cli_lines cur;
        if (cli_lines_split(text ? text : "", &cur) < 0)
            return err_set(errp, ENOMEM, "out of memory");
        size_t from = cli_lines_new_start(&v->prev[k], &cur);
        if (v->show[k] && from < cur.n) {
            if (v->last != k)
                print_header(v, k);
            print_lines(&cur, from);
        }
        cli_lines_free(&v->prev[k]);
        v->prev[k] = cur;
    }
    return fflush(stdout) == 0 ? 0 : err_sys(errp, "writing output");
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls until interrupted (SIGINT ends the process) or the VM is gone. */
static int follow(struct cli_ctx *ctx, struct logs_view *v, struct err **errp)
{
    json_t *resp = NULL;
    if (fetch_logs(ctx, v->id, MAX(v->tail, FOLLOW_WINDOW), &resp, errp) < 0)
        return -1;
    int rc = follow_start(v, resp) < 0 ? err_set(errp, ENOMEM, "out of memory") : 0;
    json_decref(resp);
    while (rc == 0) {
        sleep_ms(FOLLOW_POLL_MS);
        _cleanup_err_ struct err *e = NULL;
        resp = NULL;
        if (fetch_logs(ctx, v->id, MAX(v->tail, FOLLOW_WINDOW), &resp, &e) < 0) {
            if (e->status == 404) {
                fprintf(stderr, "capsem: %s is gone\n", v->name);
                break;
            }
            err_move(errp, &e);
            rc = -1;
            break;
        }
        rc = follow_step(v, resp, errp);
        json_decref(resp);
    }
    for (int k = 0; k < NLOGS; k++)
        cli_lines_free(&v->prev[k]);
    return rc;
}

/* logs --net / --dns: the VM's net_events or dns_events rows as a table. */
static int run_table_log(struct cli_ctx *ctx, struct cmd_opts *o, const char *ref)
{
    _cleanup_err_ struct err *e = NULL;
    struct history_filter f;
    if (history_filter_init(o, opt_dns(o) ? "dns" : "net", &f, &e) < 0)
        return cli_usage(&cmd_logs, err_msg(e));
    json_auto_t *resp = NULL;
    if (fetch_history(ctx, ref, o->tail ? o->tail : NET_LOG_DEFAULT, &f, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json      ? cli_render_json(resp, &b, &e)
             : opt_dns(o) ? cli_render_dns_log(resp, &b, &e)
                          : cli_render_net_log(resp, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static int run_logs(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    bool table = opt_net(o) || opt_dns(o);
    if (opt_net(o) && opt_dns(o))
        return cli_usage(&cmd_logs, "give --net or --dns, not both");
    if ((o->serial || o->process) && table)
        return cli_usage(&cmd_logs, "--serial and --process cannot go with --net or --dns");
    if (table && o->follow)
        return cli_usage(&cmd_logs, "--follow works with process.log and serial.log only");
    if (!table && (o->search || opt_since(o) || o->json))
        return cli_usage(&cmd_logs, "--search, --since and --json go with --net or --dns");
    if (table)
        return run_table_log(ctx, o, a->pos[0]);
    if (o->serial && o->process)
        return cli_usage(&cmd_logs, "give --serial or --process, not both");
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *info = NULL;
    if (cli_vm_info(ctx, a->pos[0], &info, &e) < 0)
        return cli_fail(e);
    const char *id = json_string_value(json_object_get(info, "id"));
    const char *name = json_string_value(json_object_get(info, "name"));
    struct logs_view v = {.id = id ? id : a->pos[0],
                          .name = name ? name : a->pos[0],
                          .show = {!o->serial, !o->process},
                          .headers = !o->serial && !o->process,
                          .tail = o->tail ? o->tail : 500,
                          .last = -1};
    if (o->follow)
        return follow(ctx, &v, &e) < 0 ? cli_fail(e) : EXIT_OK;
    json_auto_t *resp = NULL;
    if (fetch_logs(ctx, v.id, o->tail, &resp, &e) < 0)
        return cli_fail(e);
    print_all(&v, resp);
    return fflush(stdout) == 0 ? EXIT_OK : cli_failf("writing output: %s", strerror(errno));
}

static const struct cli_opt logs_opts[] = {
    {OPT_TAIL, "tail", 0, "N", "last N lines of each log, or N rows (default: 500)"},
    {OPT_SERIAL, "serial", 0, NULL, "only the guest console (serial.log), without header"},
    {OPT_PROCESS, "process", 0, NULL, "only capsem-process's log (process.log), without header"},
    {OPT_NET, "net", 0, NULL, "the network requests (net_events) as a table"},
    {OPT_DNS, "dns", 0, NULL, "the DNS queries (dns_events) as a table"},
    {OPT_SEARCH, "search", 0, "TEXT",
     "with --net/--dns: rows whose host, path, name, process,"
     " rule or reason contains TEXT"},
    {OPT_SINCE, "since", 0, "WHEN",
     "with --net/--dns: rows from WHEN on (10m, 2h, 3d, or"
     " 2026-11-29T10:00:00Z)"},
    {OPT_JSON, "json", 0, NULL, "with --net/--dns: print the service's JSON (newest first)"},
    {OPT_FOLLOW, "follow", 'f', NULL, "keep printing new lines until interrupted (Ctrl-C)"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_logs = {
    .name = "logs",
    .usage = "logs VM [--tail N] [--serial|--process|--net|--dns] [--follow] [--search TEXT]\n"
             "       [--since WHEN] [--json]",
    .summary = "Show a VM's logs",
    .description =
        "Prints the end of the VM's process.log (capsem-process: QEMU, boot, exec jobs)\n"
        "and serial.log (the guest console), each after a `--- <file> (<name>) ---`\n"
        "header. --serial or --process prints just that log, without the header.\n"
        "--follow then polls every second and prints lines as they are added (a line\n"
        "is shown once it is complete; with both logs, a header marks each switch),\n"
        "until Ctrl-C or until the VM is deleted.\n"
        "\n"
        "--net prints the VM's network requests from its session.db instead, oldest\n"
        "first: TIME PROCESS METHOD HOST:PORT PATH STATUS DECISION RULE REASON BYTES\n"
        "(sent/received) MS. A failed connection has no method, path or status.\n"
        "--dns prints its DNS queries: TIME PROCESS TYPE NAME RCODE ANSWER DECISION\n"
        "RULE REASON MS (`cache` when answered from the cache). Both work on stopped\n"
        "VMs too.",
    .examples = "  capsem logs dev\n"
                "  capsem logs dev --serial --tail 50\n"
                "  capsem logs dev --process --follow\n"
                "  capsem logs dev --net --tail 20\n"
                "  capsem logs dev --dns --since 10m --search github\n",
    .opts = logs_opts,
    .nopts = ARRAY_SIZE(logs_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_logs,
};

/* ---------- history ---------- */

static int fetch_page(struct cli_ctx *ctx, const char *ref, int64_t limit, int64_t offset,
                      const struct history_filter *f, json_t **out, struct err **errp)
{
    char l[24], off[24];
    snprintf(l, sizeof(l), "%" PRId64, limit);
    snprintf(off, sizeof(off), "%" PRId64, offset);
    const char *q[] = {"limit",   l,       "offset", off,     "search",
                       f->search, "layer", f->layer, "since", f->since[0] ? f->since : NULL};
    _cleanup_free_ char *base = cli_vm_path(ref, "/history", errp);
    _cleanup_free_ char *path = base ? cli_path_query(base, q, 5) : NULL;
    if (!path)
        return base ? err_set(errp, ENOMEM, "out of memory") : -1;
    struct cli_client *c = cli_connect(ctx, errp);
    return c ? cli_client_call(c, "GET", path, NULL, CLI_CALL_TIMEOUT, out, errp) : -1;
}

/* Up to want entries (all when want < 0), newest first, in one answer-shaped object. */
static int fetch_history(struct cli_ctx *ctx, const char *ref, int64_t want,
                         const struct history_filter *f, json_t **out, struct err **errp)
{
    json_t *all = NULL;
    int64_t got = 0;
    for (;;) {
        int64_t limit = want < 0 ? HISTORY_PAGE : MIN(HISTORY_PAGE, want - got);
        json_t *page = NULL;
        if (fetch_page(ctx, ref, limit, got, f, &page, errp) < 0) {
            json_decref(all);
            return -1;
        }
        json_t *cmds = json_object_get(page, "commands");
        if (!json_is_array(cmds)) {
            json_decref(page);
            json_decref(all);
            return err_set(errp, EPROTO, "unexpected answer from capsem-service: no commands");
        }
        size_t n = json_array_size(cmds);
        got += (int64_t)n;
        bool more = json_is_true(json_object_get(page, "has_more")) && n > 0;
        if (!all) {
            all = page;
        } else {
            json_array_extend(json_object_get(all, "commands"), cmds);
            json_object_set(all, "has_more", json_object_get(page, "has_more"));
            json_decref(page);
        }
        if (!more || (want >= 0 && got >= want))
            break;
    }
    *out = all;
    return 0;
}

static int run_history(struct cli_ctx *ctx, struct cmd_opts *o, const struct cli_args *a)
{
    _cleanup_err_ struct err *e = NULL;
    json_auto_t *resp = NULL;
    int64_t want = o->all ? -1 : o->tail ? o->tail : HISTORY_DEFAULT;
    struct history_filter f;
    if (history_filter_init(o, opt_layer(o), &f, &e) < 0)
        return cli_usage(&cmd_history, err_msg(e));
    if (fetch_history(ctx, a->pos[0], want, &f, &resp, &e) < 0)
        return cli_fail(e);
    struct buf b;
    buf_init(&b, CLI_MAX_RESPONSE);
    int rc = o->json ? cli_render_json(resp, &b, &e) : cli_render_history(resp, &b, &e);
    if (rc < 0) {
        buf_free(&b);
        return cli_fail(e);
    }
    return cli_print_buf(&b);
}

static const struct cli_opt history_opts[] = {
    {OPT_TAIL, "tail", 0, "N", "the last N commands (default: 50)"},
    {OPT_ALL, "all", 0, NULL, "every command"},
    {OPT_SEARCH, "search", 0, "TEXT", "only entries containing TEXT"},
    {OPT_LAYER, "layer", 0, "KIND",
     "only these kinds, comma-separated: exec, net, dns, model,"
     " tool (default: all)"},
    {OPT_SINCE, "since", 0, "WHEN",
     "only entries from WHEN on: an age (10m, 2h, 3d) or a time"
     " (2026-11-29T10:00:00Z)"},
    {OPT_JSON, "json", 0, NULL, "print the service's JSON (newest first)"},
    OPT_ROW_UDS,
};

const struct cli_command cmd_history = {
    .name = "history",
    .usage = "history VM [--tail N] [--all] [--search TEXT] [--layer KIND] [--since WHEN]\n"
             "       [--json]",
    .summary = "Show what ran in a VM and what it reached",
    .description =
        "Lists what happened in the VM, oldest first: the commands run by exec and run,\n"
        "and the network requests, DNS queries, model calls and tool calls recorded in\n"
        "its session.db. Columns: start time, result (exit code; HTTP status, DNS rcode\n"
        "or tool call status), duration, and the command, or for the other kinds\n"
        "`<kind>: <summary>` with `[<decision> <rule>]` when it was not allowed (cut at\n"
        "80 characters). --layer exec shows the commands only. --json prints the\n"
        "service's answer instead (newest first).",
    .examples = "  capsem history dev\n"
                "  capsem history dev --search pytest --tail 10\n"
                "  capsem history dev --all --json\n"
                "  capsem history dev --layer net,dns --since 1h\n",
    .opts = history_opts,
    .nopts = ARRAY_SIZE(history_opts),
    .stop_after = -1,
    .min_pos = 1,
    .max_pos = 1,
    .missing = "VM",
    .run = run_history,
};
