/* Vigil kernel <-> userspace ABI. THE one definition of every record that crosses the ring
 * buffer, included by the bpf/ sources (after vmlinux.h) and imported by Swift (module CVigilABI).
 *
 * House rules: fixed-width fields only, explicit padding, sizes pinned with _Static_assert,
 * append-only (an incompatible change is a new event kind). Swift's MemoryLayout of every
 * struct is checked against the BTF of the compiled objects by VigilBPFTests/ABILayoutTests.
 */
#ifndef VIGIL_ABI_H
#define VIGIL_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define VIGIL_ABI_VERSION 1
#define VIGIL_COMM_LEN 16

/** Event kinds: stable numbers, never reused. */
enum vigil_event_kind {
    VIGIL_EVENT_SELFTEST = 1, /* test/benchmark event of bpf/selftest.bpf.c */
    VIGIL_EVENT_EXEC = 2,     /* struct vigil_exec_event: a program was executed */
    VIGIL_EVENT_FORK = 3,     /* struct vigil_fork_event: a process or thread was created */
    VIGIL_EVENT_EXIT = 4,     /* struct vigil_exit_event: a process exited */
    VIGIL_EVENT_OPEN = 5,     /* struct vigil_open_event: open/openat/openat2 returned */
    VIGIL_EVENT_SYSCALL = 6,  /* struct vigil_syscall_event: any syscall, entry and exit in one record */
    VIGIL_EVENT_CONN = 7,     /* struct vigil_conn_event: a TCP connection opened (connect, accept) or closed */
    VIGIL_EVENT_TCPDROP = 8,  /* struct vigil_tcpdrop_event: the kernel dropped a TCP packet (kfree_skb with a reason) */
    VIGIL_EVENT_FIM = 9,      /* no record: a watched file changed, an event made in userspace by the daemon (FIMMonitor) */
    VIGIL_EVENT_SHELL = 10,   /* struct vigil_shell_event: an interactive bash read a line (readline returned it) */
    VIGIL_EVENT_PROGRAM = 11, /* no Vigil record: a record of a user-supplied program bundle, laid out by the bundle's own BTF */
};

/* Bounds of the variable-length parts (documented in docs/fields.md). */
#define VIGIL_PATH_MAX 4096     /* a path, NUL excluded */
#define VIGIL_PATH_DEPTH 48     /* directory levels walked to build a path */
#define VIGIL_ARGS_MAX 4096     /* bytes of argv (NUL-separated) kept per exec */
#define VIGIL_FILENAME_MAX 1024 /* bytes of the exec'ed filename / opened name as given */
#define VIGIL_TTY_LEN 32

/** Common header of every ring-buffer record. */
struct vigil_event_header {
    __u64 ts_ns;      /* bpf_ktime_get_boot_ns() */
    __u64 cgroup_id;  /* inode of the task's cgroup directory: v2 (bpf_get_current_cgroup_id), or v1 pids (vigil_cgroup_hierarchy) */
    __u32 kind;       /* enum vigil_event_kind */
    __u32 size;       /* bytes of the whole record, header included */
    __u32 pid;        /* thread group id (userspace "pid") */
    __u32 tid;        /* thread id */
    __u32 ppid;       /* real parent's tgid */
    __u32 uid;
    __u32 gid;
    __u32 cpu;        /* bpf_get_smp_processor_id() */
    __u32 mnt_ns;     /* inode number of the mount namespace */
    __u32 pid_ns;     /* inode number of the (active) pid namespace */
    char comm[VIGIL_COMM_LEN];
};
_Static_assert(sizeof(struct vigil_event_header) == 72, "vigil_event_header size");

/** Which hook kind produced a selftest event (the variant that is running). */
enum vigil_hook_kind {
    VIGIL_HOOK_TRACEPOINT = 1,
    VIGIL_HOOK_RAW_TP = 2,
    VIGIL_HOOK_TP_BTF = 3,
    VIGIL_HOOK_KPROBE = 4,
    VIGIL_HOOK_FENTRY = 5,
    VIGIL_HOOK_LSM = 6,
    VIGIL_HOOK_UPROBE = 7,
    VIGIL_HOOK_KPROBE_MULTI = 8,
};

/** VIGIL_EVENT_SELFTEST: emitted by the selftest/benchmark programs for the target process. */
struct vigil_selftest_event {
    struct vigil_event_header hdr;
    __u64 seq;        /* per-CPU sequence number of emitted events */
    __u32 hook;       /* enum vigil_hook_kind */
    __u32 arg;        /* hook-specific value (e.g. syscall argument) */
};
_Static_assert(sizeof(struct vigil_selftest_event) == 88, "vigil_selftest_event size");

/** Flags of struct vigil_exec_event. */
enum vigil_exec_flags {
    VIGIL_EXEC_ARGS_TRUNCATED = 1 << 0,     /* argv was longer than VIGIL_ARGS_MAX */
    VIGIL_EXEC_CWD_TRUNCATED = 1 << 1,      /* cwd deeper than VIGIL_PATH_DEPTH or longer than the max */
    VIGIL_EXEC_FILENAME_TRUNCATED = 1 << 2,
};

/** VIGIL_EVENT_EXEC, emitted at sched_process_exec. The variable part `data` holds, in order and
 * without NULs between them: filename (as passed to execve), argv (each argument followed by a NUL),
 * cwd (absolute). Lengths say where each ends. */
struct vigil_exec_event {
    struct vigil_event_header hdr;
    __u64 start_time_ns;  /* task start time, ns since boot (boottime clock) */
    __u32 loginuid;       /* audit login uid, 4294967295 when unset */
    __u32 flags;          /* enum vigil_exec_flags */
    __u32 tty_major;      /* 0 when no controlling tty */
    __u32 tty_minor;
    __u16 filename_len;
    __u16 args_len;
    __u16 cwd_len;
    __u16 _pad;
    char tty[VIGIL_TTY_LEN]; /* controlling tty name (e.g. "pts0"), NUL padded */
    char data[];
};
_Static_assert(sizeof(struct vigil_exec_event) == 136, "vigil_exec_event size");

/** VIGIL_EVENT_FORK: header is the parent (the caller of fork/clone). */
struct vigil_fork_event {
    struct vigil_event_header hdr;
    __u64 child_start_time_ns;
    __u32 child_pid;      /* tgid of the child (== parent's tgid for a thread) */
    __u32 child_tid;
    __u32 is_thread;      /* 1: a thread of the same process (CLONE_THREAD) */
    __u32 _pad;
};
_Static_assert(sizeof(struct vigil_fork_event) == 96, "vigil_fork_event size");

/** VIGIL_EVENT_EXIT: emitted when a thread-group leader exits. */
struct vigil_exit_event {
    struct vigil_event_header hdr;
    __u64 start_time_ns;
    __u64 duration_ns;    /* exit time - start time */
    __u32 exit_code;      /* task->exit_code: (status << 8) | signal */
    __u32 _pad;
};
_Static_assert(sizeof(struct vigil_exit_event) == 96, "vigil_exit_event size");

/** Which syscall produced an open event. */
enum vigil_open_syscall {
    VIGIL_OPEN_OPEN = 1,
    VIGIL_OPEN_OPENAT = 2,
    VIGIL_OPEN_OPENAT2 = 3,
};

/** Flags of struct vigil_open_event. */
enum vigil_open_flags {
    VIGIL_OPEN_BASE_TRUNCATED = 1 << 0,  /* the directory path was cut */
    VIGIL_OPEN_NAME_TRUNCATED = 1 << 1,  /* the name as given was cut */
    VIGIL_OPEN_BASE_UNKNOWN = 1 << 2,    /* dirfd did not name an open directory */
    VIGIL_OPEN_KILLED = 1 << 3,          /* a kernel_kill rule matched: the sensor sent SIGKILL */
    VIGIL_OPEN_CREATED = 1 << 4,         /* this open created the file (FMODE_CREATED in f_mode) */
    VIGIL_OPEN_FILE = 1 << 5,            /* a struct vigil_open_file and the opened file's path follow */
    VIGIL_OPEN_FILE_TRUNCATED = 1 << 6,  /* the opened file's path was cut (deeper or longer than the max) */
};

/** The file an open returned (appended after the name and base of a vigil_open_event when flags
 * has VIGIL_OPEN_FILE, at any alignment: read it unaligned). `path_len` bytes of its absolute path
 * follow it: the path of the dentry the returned fd refers to, walked in the kernel, so symlinks
 * are resolved (a hard link has its own name). */
struct vigil_open_file {
    __u64 ino;            /* f_inode->i_ino */
    __u32 dev;            /* f_inode->i_sb->s_dev, the kernel's encoding (major << 20 | minor) */
    __u16 path_len;
    __u16 _pad;
};
_Static_assert(sizeof(struct vigil_open_file) == 16, "vigil_open_file size");

/** VIGIL_EVENT_OPEN, emitted when the syscall returns. `data` holds the name as given
 * (name_len bytes) then, for a relative name, the absolute path of the directory it is relative
 * to (cwd or dirfd; base_len bytes, 0 for an absolute name). Userspace joins them. When flags has
 * VIGIL_OPEN_FILE (a successful open whose fd the sensor found), a struct vigil_open_file and
 * the opened file's path follow (appended: a reader that knows only name and base ignores them;
 * hdr.size counts them). */
struct vigil_open_event {
    struct vigil_event_header hdr;
    __s64 result;         /* fd, or -errno */
    __u32 flags_arg;      /* open flags (O_*) */
    __u32 mode;
    __s32 dirfd;          /* -100 = AT_FDCWD */
    __u32 syscall;        /* enum vigil_open_syscall */
    __u32 flags;          /* enum vigil_open_flags */
    __u16 name_len;
    __u16 base_len;
    char data[];
};
_Static_assert(sizeof(struct vigil_open_event) == 104, "vigil_open_event size");

/* --- the generic syscall sensor (bpf/syscalls.bpf.c; the table: bpf/syscalls/syscalls.table) --- */

#define VIGIL_SYSCALL_MAX 512        /* syscall numbers tracked: 0 .. VIGIL_SYSCALL_MAX - 1 */
#define VIGIL_SYSCALL_ARGS 6
#define VIGIL_SYSCALL_DATA_MAX 8192  /* bytes of captured argument data per record */
#define VIGIL_SYSCALL_STR_MAX 4096   /* bound of one string or path */
#define VIGIL_SYSCALL_BUF_MAX 4096   /* bound of one buffer */
#define VIGIL_SYSCALL_SOCKADDR_MAX 128

/** What the sensor reads of one argument besides its raw value (vigil_syscall_spec.kind). */
enum vigil_syscall_capture {
    VIGIL_CAPTURE_NONE = 0,
    VIGIL_CAPTURE_STR_ENTRY = 1,      /* NUL-terminated user string at entry (paths, names) */
    VIGIL_CAPTURE_STR_EXIT = 2,       /* NUL-terminated user string the call wrote (getcwd) */
    VIGIL_CAPTURE_BUF_ENTRY = 3,      /* user bytes at entry, length = argument len[i] */
    VIGIL_CAPTURE_BUF_EXIT = 4,       /* user bytes at exit, length = the result (len[i] = 7) or argument len[i], capped by the result */
    VIGIL_CAPTURE_SOCKADDR_ENTRY = 5, /* socket address at entry, length = argument len[i] */
    VIGIL_CAPTURE_SOCKADDR_EXIT = 6,  /* socket address at exit, length = *(int *)argument len[i] */
    VIGIL_CAPTURE_FIXED_ENTRY = 7,    /* len[i] bytes at entry (timespec) */
    VIGIL_CAPTURE_FIXED_EXIT = 8,     /* len[i] bytes at exit (pipe's two fds) */
    VIGIL_CAPTURE_IOV_ENTRY = 9,      /* the first iovec's bytes at entry (writev), count = argument len[i] */
    VIGIL_CAPTURE_IOV_EXIT = 10,      /* the first iovec's bytes at exit (readv), capped by the result */
    VIGIL_CAPTURE_MSG_ENTRY = 11,     /* the first iovec of a struct user_msghdr at entry (sendmsg) */
    VIGIL_CAPTURE_MSG_EXIT = 12,      /* the same at exit (recvmsg), capped by the result */
};

/** Flags of struct vigil_syscall_spec. */
enum vigil_syscall_spec_flags {
    VIGIL_SPEC_NO_RETURN = 1 << 0,    /* exit, exit_group: the record is emitted at entry */
    VIGIL_SPEC_STATE = 1 << 1,        /* changes the fd or process tables: never dropped by the
                                         filters in the kernel (userspace filters it after enrichment) */
    VIGIL_SPEC_SOCKET_FD = 1 << 2,    /* at exit, read the socket of argument 0 (the fd) from the kernel's
                                         struct sock into a struct vigil_socket_tuple (bpf/lib/socket.bpf.h) */
    VIGIL_SPEC_SOCKET_RESULT = 1 << 3, /* at exit, the same for the socket of the result fd (accept, accept4) */
    VIGIL_SPEC_DNS_ONLY = 1 << 4,     /* captured for DNS alone (with VIGIL_SPEC_AT_EXIT): dropped (counted as
                                         filtered) unless its socket or socket address argument has port 53 */
    VIGIL_SPEC_FIRST_PAYLOAD = 1 << 5, /* captured for a connection's first payload alone (write, sendto, ...; with
                                         VIGIL_SPEC_AT_EXIT): dropped (counted as filtered) unless the caller's fd
                                         is armed in `first_payload` and the call wrote something, which disarms it */
    VIGIL_SPEC_ARM_PAYLOAD = 1 << 6,  /* connect: at exit, a TCP socket that connected (0) or is connecting
                                         (-EINPROGRESS) arms (tgid, fd) in `first_payload` */
    VIGIL_SPEC_DNS_ARMED = 1 << 7,    /* read for DNS alone (with VIGIL_SPEC_DNS_ONLY): dropped (counted as
                                         filtered) unless the caller's fd is armed in `dns_sockets` (a UDP socket
                                         connected to port 53) and the call read something */
    VIGIL_SPEC_ARM_DNS = 1 << 8,      /* connect: at exit, a UDP socket that connected (0) to port 53 arms
                                         (tgid, fd) in `dns_sockets` */
    VIGIL_SPEC_AT_EXIT = 1 << 9,      /* captured at its exit alone, arguments from the saved user registers:
                                         the per-syscall hooks attach no entry program to it, the generic entry
                                         returns at once; no latency (0). Set with DNS_ONLY and FIRST_PAYLOAD,
                                         whose calls are nearly all dropped: one program run per call, not two */
};

/** Per-syscall capture spec (the `syscall_specs` array, indexed by this arch's syscall number),
 * written by userspace from the generated table. */
struct vigil_syscall_spec {
    __u8 kind[VIGIL_SYSCALL_ARGS];    /* enum vigil_syscall_capture */
    __u8 len[VIGIL_SYSCALL_ARGS];     /* the length argument's index, 7 = the result, or a fixed size */
    __u16 flags;                      /* enum vigil_syscall_spec_flags */
    __u16 buf_max;                    /* bytes kept of a buffer (snap length), <= VIGIL_SYSCALL_BUF_MAX */
    __u16 str_max;                    /* bytes kept of a string or path, <= VIGIL_SYSCALL_STR_MAX */
    __u16 _pad;
};
_Static_assert(sizeof(struct vigil_syscall_spec) == 20, "vigil_syscall_spec size");

/** Which syscalls are wanted: bit N of word N/64 (the `syscall_wanted` array, one entry). */
struct vigil_syscall_bitmap {
    __u64 bits[VIGIL_SYSCALL_MAX / 64];
};
_Static_assert(sizeof(struct vigil_syscall_bitmap) == 64, "vigil_syscall_bitmap size");

/** Flags of struct vigil_syscall_event. */
enum vigil_syscall_flags {
    VIGIL_SYSCALL_NO_EXIT = 1 << 0,   /* emitted at entry (the call does not return): ret is 0 */
    VIGIL_SYSCALL_DATA_FULL = 1 << 1, /* some argument was not captured: VIGIL_SYSCALL_DATA_MAX reached */
    VIGIL_SYSCALL_SECCOMP_DENIED = 1 << 2, /* bpf/seccomp.bpf.c: refused by a seccomp filter (an exit without an entry) */
    VIGIL_SYSCALL_COMPAT = 1 << 3,    /* made by a 32-bit task: nr is of the compat table (i386, arm), not this one */
    VIGIL_SYSCALL_SOCKET = 1 << 4,    /* a struct vigil_socket_tuple follows the data_len bytes of data */
    VIGIL_SYSCALL_FIM = 1 << 5,       /* bpf/fim.bpf.c: a change to a watched file; a struct vigil_fim_match
                                         follows the data (and the socket tuple, if any: fim.bpf.c never
                                         appends one) at the next multiple of 8 from the record's start */
};

/** Both ends of a socket as the kernel's struct sock holds them at the syscall's exit (appended
 * to a syscall record with VIGIL_SYSCALL_SOCKET; bpf/lib/socket.bpf.h). */
struct vigil_socket_tuple {
    __u16 family;         /* AF_* of the sock */
    __u16 type;           /* SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, ... */
    __u16 protocol;       /* IPPROTO_* */
    __u8 state;           /* TCP_* state (TCP_ESTABLISHED = 1, TCP_LISTEN = 10, TCP_SYN_SENT = 2, ...) */
    __u8 _pad;
    __u16 lport;          /* local port, host order */
    __u16 rport;          /* remote port, host order (0: none) */
    __u32 _pad2;
    __u64 inode;          /* the socket's inode (socket:[inode]) */
    __u8 laddr[16];       /* local address: IPv4 in the first 4 bytes; unix: the sock's kernel address */
    __u8 raddr[16];       /* remote address; unix: the peer sock's kernel address */
};
_Static_assert(sizeof(struct vigil_socket_tuple) == 56, "vigil_socket_tuple size");

/** VIGIL_EVENT_SYSCALL: one syscall, entry and exit paired. hdr.ts_ns is the entry time. `data`
 * holds the captured arguments one after another in argument order, arg_len[i] bytes each (0:
 * not captured; a string without its NUL). */
struct vigil_syscall_event {
    struct vigil_event_header hdr;
    __u64 latency_ns;     /* exit time - entry time */
    __s64 ret;            /* the return value (-errno on failure) */
    __u64 args[VIGIL_SYSCALL_ARGS]; /* raw argument values */
    __u32 nr;             /* the syscall number of this arch */
    __u16 flags;          /* enum vigil_syscall_flags */
    __u16 data_len;
    __u16 arg_len[VIGIL_SYSCALL_ARGS];
    __u8 arg_truncated;   /* bit i: argument i was cut at its bound */
    __u8 arg_failed;      /* bit i: reading argument i from user memory failed */
    __u16 _pad;
    char data[];
};
_Static_assert(sizeof(struct vigil_syscall_event) == 160, "vigil_syscall_event size");

/* --- the connection sensor (bpf/conn.bpf.c): TCP connection lifecycle and drops --- */

/** What a struct vigil_conn_event reports. */
enum vigil_conn_phase {
    VIGIL_CONN_CONNECT = 0, /* an outgoing connection was established (SYN_SENT -> ESTABLISHED) */
    VIGIL_CONN_ACCEPT = 1,  /* accept returned an incoming connection */
    VIGIL_CONN_CLOSE = 2,   /* the connection reached TCP_CLOSE (also a connect that failed) */
    VIGIL_CONN_RETRANSMIT = 3, /* the kernel retransmitted a segment (tcp/tcp_retransmit_skb);
                                  retransmits is the connection's count so far */
};

/** Flags of struct vigil_conn_event. */
enum vigil_conn_flags {
    VIGIL_CONN_PASSIVE = 1 << 0, /* accepted: the local end is the server */
};

/** VIGIL_EVENT_CONN. The header is the task that opened the connection (connect or accept, kept
 * in the sensor's map by the struct sock's address), whatever context the state change ran in;
 * ts_ns is the time of the change. The tuple is read from the struct sock at the change:
 * laddr/lport the local end, raddr/rport the remote one, state the state it left (a close from
 * SYN_SENT is a connect that failed). The counters are the kernel's struct tcp_sock ones at close
 * (0 at open). */
struct vigil_conn_event {
    struct vigil_event_header hdr;
    struct vigil_socket_tuple tuple;
    __u64 sock;           /* the struct sock's kernel address: one connection's id */
    __u64 start_ns;       /* boot ns it began: SYN_SENT, or the SYN_RECV of an accepted one */
    __u64 duration_ns;    /* close: ts_ns - start_ns */
    __u64 bytes_sent;     /* tcp_sock.bytes_acked: bytes the peer acknowledged */
    __u64 bytes_received; /* tcp_sock.bytes_received */
    __u32 retransmits;    /* tcp_sock.total_retrans: segments retransmitted */
    __u8 phase;           /* enum vigil_conn_phase */
    __u8 flags;           /* enum vigil_conn_flags */
    __u16 _pad;
};
_Static_assert(sizeof(struct vigil_conn_event) == 176, "vigil_conn_event size");

/** Flags of struct vigil_tcpdrop_event. */
enum vigil_tcpdrop_flags {
    VIGIL_TCPDROP_OWNER = 1 << 0, /* the header is the task that opened the packet's connection (else the current task) */
};

/** VIGIL_EVENT_TCPDROP, from skb/kfree_skb for TCP over IPv4 and IPv6. The tuple is the packet's:
 * laddr/lport its source, raddr/rport its destination (state: the socket's state, 0 without one). */
struct vigil_tcpdrop_event {
    struct vigil_event_header hdr;
    struct vigil_socket_tuple tuple;
    __u64 sock;           /* the socket the packet belonged to (rx_sk or skb->sk), 0 when none */
    __u64 location;       /* kernel address of the code that dropped it */
    __u32 reason;         /* enum skb_drop_reason (the running kernel's numbering: named from its BTF) */
    __u8 tcp_flags;       /* the TCP header's flags: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10 */
    __u8 flags;           /* enum vigil_tcpdrop_flags */
    __u16 _pad;
};
_Static_assert(sizeof(struct vigil_tcpdrop_event) == 152, "vigil_tcpdrop_event size");

#define VIGIL_SHELL_LINE_MAX 512 /* bytes of a typed line kept, NUL included */

/** Flags of struct vigil_shell_event. */
enum vigil_shell_flags {
    VIGIL_SHELL_TRUNCATED = 1 << 0, /* the line was longer than VIGIL_SHELL_LINE_MAX - 1 bytes and was cut */
};

/** VIGIL_EVENT_SHELL, from a uretprobe on readline (in bash, or the libreadline it links): the
 * line an interactive bash read, as readline returned it (no newline). The header is the shell. */
struct vigil_shell_event {
    struct vigil_event_header hdr;
    __u32 sid;            /* the session leader's pid (the initial pid namespace's) */
    __u32 tty_major;      /* 0 when no controlling tty */
    __u32 tty_minor;
    __u16 line_len;       /* bytes of `line` before its NUL */
    __u8 flags;           /* enum vigil_shell_flags */
    __u8 _pad;
    char tty[VIGIL_TTY_LEN]; /* controlling tty name (e.g. "pts0"), NUL padded */
    char line[VIGIL_SHELL_LINE_MAX]; /* the line, NUL terminated */
};
_Static_assert(sizeof(struct vigil_shell_event) == 632, "vigil_shell_event size");

/* --- seccomp profile recording (bpf/seccomp.bpf.c; Sources/VigilSeccomp) --- */

/** Flags of struct vigil_seccomp_record. */
enum vigil_seccomp_flags {
    VIGIL_SECCOMP_ARMED = 1 << 0,      /* recording every task: set by userspace, or by the first exec in the cgroup */
    VIGIL_SECCOMP_IGNORED = 1 << 1,    /* never recorded (a discovered cgroup userspace rejected) */
    VIGIL_SECCOMP_DISCOVERED = 1 << 2, /* added by the kernel: a new cgroup under a watched parent */
    VIGIL_SECCOMP_VERIFY = 1 << 3,     /* report syscalls a seccomp filter refused (VIGIL_SYSCALL_SECCOMP_DENIED) */
    VIGIL_SECCOMP_FILTERED = 1 << 4,   /* recording tasks under a seccomp filter (a container from its runtime's
                                          filter install: what its profile must allow), until an exec without one arms */
};

/** Syscall ABIs seen in a cgroup (vigil_seccomp_record.arches). */
enum vigil_seccomp_arch {
    VIGIL_SECCOMP_ARCH_NATIVE = 1 << 0, /* x86_64 or aarch64 */
    VIGIL_SECCOMP_ARCH_COMPAT = 1 << 1, /* a 32-bit task: i386 on x86_64, arm on aarch64 */
    VIGIL_SECCOMP_ARCH_X32 = 1 << 2,    /* x32 (__X32_SYSCALL_BIT set) */
};

#define VIGIL_SECCOMP_X32_MAX 1024      /* x32 numbers (without __X32_SYSCALL_BIT) tracked */
#define VIGIL_SECCOMP_PERSONALITIES 4   /* distinct personality() arguments kept */

/** The syscalls one cgroup made (the `seccomp_cgroups` hash, keyed by cgroup id): bit N of word
 * N/64 per ABI, and what the argument filters need. No event per syscall. */
struct vigil_seccomp_record {
    __u32 flags;                  /* enum vigil_seccomp_flags */
    __u32 arches;                 /* enum vigil_seccomp_arch: ABIs seen */
    __u64 clone_flags;            /* OR of the flags of every native clone and clone3 seen */
    __u32 personality[VIGIL_SECCOMP_PERSONALITIES]; /* distinct personality() arguments seen */
    __u32 personality_count;      /* how many distinct ones were seen (may exceed the array) */
    __u32 clone3_seen;            /* clone3 calls whose flags were read (1 = at least one) */
    __u64 native[VIGIL_SYSCALL_MAX / 64];
    __u64 compat[VIGIL_SYSCALL_MAX / 64];
    __u64 x32[VIGIL_SECCOMP_X32_MAX / 64];
};
_Static_assert(sizeof(struct vigil_seccomp_record) == 296, "vigil_seccomp_record size");

/** In-kernel filter settings (the `filter` array map, index 0), changeable at run time. */
enum vigil_filter_flags {
    VIGIL_FILTER_CONTAINERS_ONLY = 1 << 0, /* drop tasks in the host's pid namespace */
    VIGIL_FILTER_COMM_INCLUDE = 1 << 1,    /* keep only comms in the comm_include map */
    VIGIL_FILTER_COMM_EXCLUDE = 1 << 2,    /* drop comms in the comm_exclude map */
    VIGIL_FILTER_PIDS = 1 << 3,            /* keep only tgids in the pids map */
    VIGIL_FILTER_UIDS = 1 << 4,            /* keep only uids in the uids map */
    VIGIL_FILTER_CGROUPS = 1 << 5,         /* keep only cgroup ids in the cgroups map */
    VIGIL_FILTER_OPEN_PATHS = 1 << 6,      /* opens: keep only open_classes, or paths in open_paths/open_basenames */
    VIGIL_FILTER_OPEN_KILL = 1 << 7,       /* opens: look up the path maps for kill bits even when not filtering */
    VIGIL_FILTER_OPEN_BASENAMES = 1 << 8,  /* opens: the open_basenames map has entries */
    VIGIL_FILTER_OPEN_INODES = 1 << 9,     /* opens: the open_inodes map has entries */
    VIGIL_FILTER_PIDS_FOLLOW = 1 << 10,    /* with PIDS: a process forked by one in the pids map, or by
                                            * Vigil itself, joins the map (leaves it at its exit) */
};

struct vigil_filter_config {
    __u32 flags;          /* enum vigil_filter_flags */
    __u32 host_pid_ns;    /* inode of the host's pid namespace (for CONTAINERS_ONLY) */
    __u32 open_classes;   /* with OPEN_PATHS: open classes (VIGIL_OPEN_CLASS) kept whatever the path */
    __u32 _pad;
};
_Static_assert(sizeof(struct vigil_filter_config) == 16, "vigil_filter_config size");

/* --- the path pushdown of the file sensor (docs/rules.md, "What runs in the kernel") ---
 * An open belongs to exactly one class: its access mode (flags & O_ACCMODE: 0 read, 1 write,
 * 2 read-write, 3 treated as read-write by the rules) and its result: succeeded (bits 0-3), failed
 * (4-7), or succeeded and created the file (8-11, FMODE_CREATED). Masks of classes say which opens
 * a path entry keeps (some rule may match them) or kills. */
#define VIGIL_OPEN_CLASS(accmode, failed, created) \
    (1u << (((accmode) & 3) + ((failed) ? 4 : (created) ? 8 : 0)))
#define VIGIL_PUSHDOWN_PATH_MAX 256     /* bytes of a name the kernel compares, NUL included */
#define VIGIL_PUSHDOWN_BASENAME_MAX 64  /* bytes of a basename key (NUL padded) */

/** Key of the open_paths LPM trie: an exact path is stored with its NUL (prefixlen counts it),
 * so it matches only itself; a prefix without. prefixlen is in bits. */
struct vigil_path_key {
    __u32 prefixlen;
    char path[VIGIL_PUSHDOWN_PATH_MAX];
};
_Static_assert(sizeof(struct vigil_path_key) == 260, "vigil_path_key size");

/** Key of the open_basenames hash: the last component of the name, NUL padded. */
struct vigil_basename_key {
    char name[VIGIL_PUSHDOWN_BASENAME_MAX];
};
_Static_assert(sizeof(struct vigil_basename_key) == 64, "vigil_basename_key size");

/** Which command names a kill entry applies to. */
enum vigil_kill_comms {
    VIGIL_KILL_ANY_COMM = 0,     /* every process */
    VIGIL_KILL_COMMS_ONLY = 1,   /* only comms listed in kill_comms under kill_rule */
    VIGIL_KILL_COMMS_EXCEPT = 2, /* every comm but those listed */
};

/** Value of open_paths and open_basenames. For nested prefixes userspace stores in each entry
 * the union of every covering entry (LPM returns only the longest match). */
struct vigil_path_rule {
    __u16 pass;       /* classes of opens some rule may match: sent to userspace */
    __u16 kill;       /* classes a kernel_kill rule matches: SIGKILL, then sent marked KILLED */
    __u16 kill_comms; /* enum vigil_kill_comms */
    __u16 _pad;
    __u32 kill_rule;  /* the kernel_kill rule's number, for kill_comms keys */
};
_Static_assert(sizeof(struct vigil_path_rule) == 12, "vigil_path_rule size");

/** Key of the kill_comms hash: a kernel_kill rule's number and a comm (NUL padded). */
struct vigil_kill_comm_key {
    __u32 rule;
    char comm[VIGIL_COMM_LEN];
};
_Static_assert(sizeof(struct vigil_kill_comm_key) == 20, "vigil_kill_comm_key size");

/** Key of the open_inodes hash: a file some rule names by its exact path, by device and inode,
 * so that an open of it through another name (a hard link) is kept and killed like the name. */
struct vigil_inode_key {
    __u64 ino;
    __u32 dev;        /* the kernel's encoding, as vigil_open_file.dev */
    __u32 _pad;
};
_Static_assert(sizeof(struct vigil_inode_key) == 16, "vigil_inode_key size");

/** Indexes of the per-CPU counters every sensor keeps in its `counters` map. */
enum vigil_counter {
    VIGIL_COUNTER_EMITTED = 0,  /* records submitted to the ring */
    VIGIL_COUNTER_FILTERED = 1, /* events dropped by an in-kernel filter */
    VIGIL_COUNTER_LOST = 2,     /* events lost: the ring full (bpf_ringbuf_reserve failed), no task storage,
                                 * a syscall whose return the kprobe variants' pool missed */
    VIGIL_COUNTER_KILLED = 3,   /* processes sent SIGKILL by a kernel_kill rule */
    VIGIL_COUNTER_UNFOLLOWED = 4, /* forks not followed: the pids map was full (VIGIL_FILTER_PIDS_FOLLOW) */
    VIGIL_COUNTER_MAX = 5,
};


/* --- file integrity monitoring (bpf/fim.bpf.c, issue 14) --- */

#define VIGIL_FIM_NAME_MAX 64   /* bytes of a file name in fim_names keys (longer names: their first 63) */
#define VIGIL_FIM_PATH_MAX 256  /* bytes of a directory path in fim_dirs keys */

/** What a watched inode or name is (vigil_fim_watch.flags). */
enum vigil_fim_flags {
    VIGIL_FIM_FILE = 1 << 0,   /* a watched file: writes, truncation, attribute changes are reported */
    VIGIL_FIM_DIR = 1 << 1,    /* a watched directory: entries created, renamed, linked or removed in it */
    VIGIL_FIM_PARENT = 1 << 2, /* the directory of a watched file: files created in it are remembered
                                * (fim_created) so a rename over the watched name re-keys at once */
};

/** Value of fim_inodes (key: vigil_inode_key): the watch (userspace's number) and what it is. */
struct vigil_fim_watch {
    __u32 id;
    __u32 flags;      /* enum vigil_fim_flags */
};
_Static_assert(sizeof(struct vigil_fim_watch) == 8, "vigil_fim_watch size");

/** Key of fim_names and fim_created: a name in a directory (NUL padded, first 63 bytes). */
struct vigil_fim_name_key {
    struct vigil_inode_key dir;
    char name[VIGIL_FIM_NAME_MAX];
};
_Static_assert(sizeof(struct vigil_fim_name_key) == 80, "vigil_fim_name_key size");

/** Value of fim_names: the watched file now at that name (ino 0: unknown until the next open of
 * the name, which re-keys), its watch and flags. */
struct vigil_fim_name {
    struct vigil_inode_key file;
    struct vigil_fim_watch watch;
};
_Static_assert(sizeof(struct vigil_fim_name) == 24, "vigil_fim_name size");

/** Key of fim_dirs: a directory path as written (NUL padded) as seen from a root directory (the
 * host's, or a container's: the task's fs->root), whose inode is the value. */
struct vigil_fim_dir_key {
    struct vigil_inode_key root; /* (dev, ino) of the root directory the path starts from */
    char path[VIGIL_FIM_PATH_MAX];
};
_Static_assert(sizeof(struct vigil_fim_dir_key) == 272, "vigil_fim_dir_key size");

/** How a FIM record matched (vigil_fim_match.how). */
enum vigil_fim_how {
    VIGIL_FIM_BY_INODE = 1 << 0,    /* the fd's inode is watched */
    VIGIL_FIM_BY_NAME = 1 << 1,     /* a path argument names a watched file */
    VIGIL_FIM_IN_DIR = 1 << 2,      /* a path argument names an entry of a watched directory */
    VIGIL_FIM_SECOND = 1 << 3,      /* the second path (rename's or link's new end) matched */
    VIGIL_FIM_REKEYED = 1 << 4,     /* the name now holds new_file, which the kernel now watches */
    VIGIL_FIM_UNRESOLVED = 1 << 5,  /* a relative path with '/': passed for userspace to resolve */
    VIGIL_FIM_CREATED = 1 << 6,     /* the open created the file */
    VIGIL_FIM_STALE = 1 << 7,       /* the watched name's new inode is not known (re-keyed at its next open) */
};

/** What a FIM record (VIGIL_SYSCALL_FIM) matched: the watched inode (or the directory of an entry change), the inode
 * a rename or open put at a watched name, the watch and how. */
struct vigil_fim_match {
    struct vigil_inode_key file;
    struct vigil_inode_key new_file;
    __u32 id;
    __u32 how;        /* enum vigil_fim_how */
};
_Static_assert(sizeof(struct vigil_fim_match) == 40, "vigil_fim_match size");

#endif /* VIGIL_ABI_H */
