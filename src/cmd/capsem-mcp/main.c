/* capsem-mcp: MCP stdio server for AI agents on the host (surface.md
 * section 6). All logic is in src/lib/mcp; see docs/mcp.md. Nothing but
 * JSON-RPC goes to stdout: logs go to $CAPSEM_HOME/logs/mcp.log. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/paths.h"
#include "base/util.h"
#include "mcp/mcp_stdio.h"

static const char usage[] =
    "Usage: capsem-mcp [--version] [--help]\n\n"
    "MCP server (JSON-RPC 2.0 over stdin/stdout, one message per line) that lets AI agents\n"
    "create and drive Capsem VMs through capsem-service.\n\n"
    "Environment:\n"
    "  CAPSEM_HOME      capsem home (~/.capsem); the log is $CAPSEM_HOME/logs/mcp.log\n"
    "  CAPSEM_RUN_DIR   run directory ($CAPSEM_HOME/run)\n"
    "  CAPSEM_UDS_PATH  service socket ($CAPSEM_RUN_DIR/service.sock); when set, the\n"
    "                   service is never started automatically\n"
    "  CAPSEM_LOG       log level: error, warn, info (default), debug\n";

/* Logs go to <home>/logs/mcp.log; stderr when it cannot be opened. */
static int open_log(const char *home)
{
    _cleanup_free_ char *dir = paths_join(home, "logs");
    _cleanup_free_ char *path = dir ? paths_join(dir, "mcp.log") : NULL;
    if (!path || mkdir_p(dir, 0700, NULL) < 0)
        return -1;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
}

/* The protocol gets its own (close-on-exec) copy of stdout and fd 1 becomes
 * stderr (/dev/null without one), so nothing a library or a child process
 * (systemctl) prints can land in the JSON-RPC stream, and a service we start
 * never holds the client's pipe open. Returns the protocol's fd or -1. */
static int protect_stdout(void)
{
    int out_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    if (out_fd < 0)
        return -1;
    _cleanup_close_ int null_fd = -1;
    int sink = STDERR_FILENO;
    if (fcntl(STDERR_FILENO, F_GETFD) < 0)
        sink = null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (sink < 0 || dup2(sink, STDOUT_FILENO) < 0) {
        int saved = errno;
        close(out_fd);
        errno = saved;
        return -1;
    }
    return out_fd;
}

static int serve(void)
{
    _cleanup_err_ struct err *e = NULL;
    _cleanup_free_ char *home = paths_home(&e);
    _cleanup_free_ char *run_dir = home ? paths_run_dir(&e) : NULL;
    _cleanup_free_ char *socket = run_dir ? paths_service_socket(&e) : NULL;
    if (!socket) {
        fprintf(stderr, "capsem-mcp: %s\n", e ? err_msg(e) : "out of memory");
        return 1;
    }
    _cleanup_close_ int log_fd = open_log(home);
    enum log_level level = LOG_INFO;
    const char *lvl = getenv("CAPSEM_LOG");
    if (lvl && *lvl && log_level_parse(lvl, &level) < 0)
        level = LOG_INFO;
    log_init("capsem-mcp", log_fd, level);
    const char *uds = getenv("CAPSEM_UDS_PATH");
    struct mcp_stdio_config cfg = {
        .socket = socket,
        .autostart = !(uds && *uds),
        .home = home,
        .run_dir = run_dir,
    };
    log_info("capsem-mcp %s started; service socket %s%s", CAPSEM_VERSION, socket,
             cfg.autostart ? "" : " (auto-start off)");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        fputs("capsem-mcp: cannot initialise libcurl\n", stderr);
        return 1;
    }
    _cleanup_close_ int out_fd = protect_stdout();
    if (out_fd < 0) {
        log_error("cannot set up stdout: %s", strerror(errno));
        fprintf(stderr, "capsem-mcp: cannot set up stdout: %s\n", strerror(errno));
        curl_global_cleanup();
        return 1;
    }
    int rc = mcp_stdio_run(&cfg, STDIN_FILENO, out_fd, &e);
    curl_global_cleanup();
    if (rc < 0) {
        log_error("%s", err_msg(e));
        fprintf(stderr, "capsem-mcp: %s\n", err_msg(e));
        return 1;
    }
    log_info("capsem-mcp exiting");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
            printf("capsem-mcp %s\n", CAPSEM_VERSION);
            return 0;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        fprintf(stderr, "capsem-mcp: unknown argument: %s\n%s", argv[1], usage);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a gone client shows up as EPIPE on stdout */
    return serve();
}
