/* Messages between capsem-process (host) and capsem-agent (guest), carried as
 * records (proto/rec.h) whose payloads are TLV fields (proto/tlv.h) on mux
 * streams. Unknown tags are ignored; unknown record types on a stream reset
 * that stream. Documented in docs/channel.md. */
#ifndef CAPSEM_AGENT_PROTO_H
#define CAPSEM_AGENT_PROTO_H

/* Bumped on incompatible changes to the messages below; the host refuses an
 * agent that reports another value (channel_incompatible). */
#define AGENT_PROTO_VERSION 1

/* Largest record payload on control/exec/file/terminal streams. Data records
 * are at most AGENT_DATA_CHUNK bytes of payload. */
#define AGENT_MAX_RECORD (1024u * 1024u)
#define AGENT_DATA_CHUNK (32u * 1024u)
#define AGENT_MAX_COMMAND (256u * 1024u)
#define AGENT_MAX_ENV_TOTAL (256u * 1024u)

/* ---- control stream (MUX_SVC_CONTROL, opened by the host once ready) ---- */
enum ctl_rec {
    CTL_BOOT = 1,      /* host -> guest: T_CLOCK_MS, T_HOSTNAME, T_VM_ID, T_VM_NAME, T_ENV... */
    CTL_BOOT_OK = 2,   /* guest -> host: T_PROTO, T_AGENT_VERSION, T_KERNEL, T_UPTIME_MS */
    CTL_SHUTDOWN = 3,  /* host -> guest: sync file systems and power off */
    CTL_EVENT = 4,     /* guest -> host: T_EVENT (see ctl_event) */
    CTL_SYNC = 5,      /* host -> guest: sync file systems; answered by CTL_SYNC_OK */
    CTL_SYNC_OK = 6,
    CTL_ERROR = 7,     /* either way: T_MESSAGE */
    CTL_NET_CONFIG = 8, /* host -> guest, at boot and on change: T_HTTP_PORT (u32, repeated),
                           T_CA_CERT (PEM of the install CA); the guest (re)writes its
                           iptables rules atomically and the CA bundle */
    CTL_NET_OK = 9,     /* guest -> host: plumbing done (T_ERRNO/T_MESSAGE on failure) */
};

enum ctl_event {
    CTL_EVENT_POWEROFF = 1, /* guest ran poweroff/shutdown/halt */
    CTL_EVENT_SUSPEND = 2,  /* guest ran suspend */
    CTL_EVENT_REBOOT = 3,   /* guest ran reboot (refused, reported) */
};

/* ---- exec stream (MUX_SVC_EXEC, one per command) ---- */
enum exec_rec {
    EXEC_START = 1,  /* host -> guest: T_COMMAND, T_TIMEOUT_MS, T_MAX_OUTPUT, T_ENV... */
    EXEC_KILL = 2,   /* host -> guest: kill the process group now */
    EXEC_STDOUT = 3, /* guest -> host: raw bytes */
    EXEC_STDERR = 4, /* guest -> host: raw bytes */
    EXEC_EXIT = 5,   /* guest -> host: T_EXIT_CODE, T_TIMED_OUT, T_TRUNCATED, T_DURATION_MS,
                        T_STDOUT_BYTES, T_STDERR_BYTES */
    EXEC_ERROR = 6,  /* guest -> host: T_ERRNO, T_MESSAGE (spawn failed) */
};

/* ---- terminal stream (MUX_SVC_TERMINAL) ---- */
enum term_rec {
    TERM_OPEN = 1,   /* host -> guest: T_COLS, T_ROWS, T_ENV... */
    TERM_INPUT = 2,  /* host -> guest: raw bytes for the PTY */
    TERM_RESIZE = 3, /* host -> guest: T_COLS, T_ROWS */
    TERM_OUTPUT = 4, /* guest -> host: raw PTY output */
    TERM_EXIT = 5,   /* guest -> host: T_EXIT_CODE */
};

/* ---- file stream (MUX_SVC_FILES, one per operation) ---- */
enum file_rec {
    FILE_REQ = 1,    /* host -> guest: T_OP, T_PATH, T_MODE, T_MAX_BYTES, T_CONFINE, T_DEPTH */
    FILE_DATA = 2,   /* either way: raw bytes */
    FILE_END = 3,    /* host -> guest: end of upload data */
    FILE_RESULT = 4, /* guest -> host: T_ERRNO (0 = ok), T_MESSAGE, T_SIZE */
    FILE_INFO = 5,   /* guest -> host before FILE_DATA of a read: T_SIZE, T_MODE */
    FILE_ENTRY = 6,  /* guest -> host for a list: T_PATH, T_NAME, T_TYPE, T_SIZE, T_MTIME, T_DEPTH */
};

enum file_op {
    FILE_OP_READ = 1,
    FILE_OP_WRITE = 2,
    FILE_OP_LIST = 3,
    FILE_OP_STAT = 4,
};

enum file_type { FILE_TYPE_FILE = 1, FILE_TYPE_DIR = 2, FILE_TYPE_SYMLINK = 3, FILE_TYPE_OTHER = 4 };

/* ---- network stream (MUX_SVC_NET, opened by the guest per TCP connection) ----
 * Open metadata (<= 1 KiB): T_DST_IP (u32, host byte order of the IPv4 address
 * as read from SO_ORIGINAL_DST), T_DST_PORT (u32), T_PID (u32, 0 unknown),
 * T_COMM (<= 64 B), T_EXE (<= 256 B). Then raw bytes both ways; FIN is a
 * half-close, RST an abort (the relay answers the guest socket with RST). */

/* ---- DNS stream (MUX_SVC_DNS, one long-lived stream opened by the guest) ---- */
enum dns_rec {
    DNS_QUERY = 1,  /* guest -> host: T_TAG, T_PROTO_L4 (1 udp, 2 tcp), T_PID, T_COMM, T_PAYLOAD */
    DNS_ANSWER = 2, /* host -> guest: T_TAG, T_PAYLOAD (the DNS message to send back) */
    DNS_DROP = 3,   /* host -> guest: T_TAG (no answer: the client times out) */
};

/* ---- TLV tags (shared namespace) ---- */
enum agent_tag {
    T_PROTO = 1,
    T_AGENT_VERSION = 2,
    T_KERNEL = 3,
    T_UPTIME_MS = 4,
    T_CLOCK_MS = 5,
    T_HOSTNAME = 6,
    T_VM_ID = 7,
    T_VM_NAME = 8,
    T_ENV = 9, /* "NAME=value", repeated */
    T_EVENT = 10,
    T_MESSAGE = 11,
    T_PERSISTENT = 12, /* u32: the VM is named (suspend allowed) */
    T_SEED = 13,       /* random bytes the guest mixes into its RNG and reseeds with */
    T_HTTP_PORT = 14,  /* u32, repeated */
    T_CA_CERT = 15,    /* PEM text */
    T_DST_IP = 16,
    T_DST_PORT = 17,
    T_COMM = 18,
    T_EXE = 19,
    T_COMMAND = 20,
    T_TIMEOUT_MS = 21,
    T_MAX_OUTPUT = 22,
    T_EXIT_CODE = 23,
    T_TIMED_OUT = 24,
    T_TRUNCATED = 25, /* bit 0: stdout, bit 1: stderr */
    T_DURATION_MS = 26,
    T_STDOUT_BYTES = 27,
    T_STDERR_BYTES = 28,
    T_ERRNO = 29,
    T_PID = 30,
    T_COLS = 40,
    T_ROWS = 41,
    T_OP = 50,
    T_PATH = 51,
    T_MODE = 52,
    T_MAX_BYTES = 53,
    T_CONFINE = 54, /* u32 1: path must stay inside /root (symlinks included) */
    T_SIZE = 55,
    T_NAME = 56,
    T_TYPE = 57,
    T_MTIME = 58,
    T_DEPTH = 59,
    T_TAG = 60,
    T_PROTO_L4 = 61,
    T_PAYLOAD = 62,
};

#endif
