// SPDX-License-Identifier: GPL-2.0
/* file sensor: open, openat and openat2, reported when they return, with the name as given, the
 * directory a relative name is relative to (cwd or dirfd, as an absolute path), flags, mode and
 * the result (fd or -errno); after a success also the file the fd refers to: its device, inode,
 * whether this open created it, and its path (symlinks resolved: the dentry's own path).
 *
 * Variants (VigilSensors/Sensors.swift): fexit on do_sys_openat2 (one hook sees arguments and
 * result; kernels with BPF trampolines), else the specific syscall exit tracepoints
 * syscalls/sys_exit_{open,openat,openat2}, reading the arguments from the saved user registers:
 * never the generic sys_enter/sys_exit hooks, which would tax every syscall on the host.
 *
 * Before the event is built, the path pushdown (open_verdict) drops opens no rule can match and
 * kills the caller of an open a kernel_kill rule matches: on the opened file's path after a
 * success (what userspace calls fd.name), on the name as given after a failure. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_open_event);
VIGIL_ABI_TYPE(vigil_open_file);
VIGIL_ABI_TYPE(vigil_inode_key);

#define AT_FDCWD -100
/* include/linux/fs.h: the open created the file (bit 20 of f_mode since 4.19; a macro, not in BTF). */
#define FMODE_CREATED 0x100000
/* Where emit_open keeps the opened file's path while the base path is walked (its final place in
 * the record ends below this offset of the event scratch). */
#define OPEN_FILE_STASH (VIGIL_EVENT_SCRATCH - VIGIL_PATH_MAX)

/* The arguments of one open. */
struct open_args {
    const char *filename;
    __s32 dirfd;
    __u32 syscall;
    __u32 flags;
    __u32 mode;
};

/* --- the path pushdown (docs/rules.md): which opens some rule may match, which to kill --- */

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(max_entries, 8192);
    __type(key, struct vigil_path_key);
    __type(value, struct vigil_path_rule);
    __uint(map_flags, BPF_F_NO_PREALLOC);
} open_paths SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct vigil_basename_key);
    __type(value, struct vigil_path_rule);
} open_basenames SEC(".maps");

/* Files some rule names by exact path, by device and inode (userspace stats the names): an open
 * of one through another name (a hard link) is kept and killed as an open of the name. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct vigil_inode_key);
    __type(value, struct vigil_path_rule);
} open_inodes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, struct vigil_kill_comm_key);
    __type(value, __u8);
} kill_comms SEC(".maps");

/* Per-CPU room for the lookup keys (the name is read once, into the trie key). `_align` puts the
 * path on 8 bytes, so it is scanned a word at a time; the bytes after it give room for the scan's
 * look-ahead word and for copying a basename of up to VIGIL_PUSHDOWN_BASENAME_MAX bytes from any
 * offset. */
struct open_lookup {
    __u32 _align;
    struct vigil_path_key key;
    char spill[VIGIL_PUSHDOWN_BASENAME_MAX];
    struct vigil_basename_key base;
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct open_lookup);
} open_lookup SEC(".maps");

/* Per CPU: [0] when this CPU last woke the reader at once for a matched open (bpf_ktime_get_ns),
 * [1] the matched opens that woke it, [2] those that left it to that wakeup or the timer. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 3);
    __type(key, __u32);
    __type(value, __u64);
} match_wakes SEC(".maps");

/* Wakes come at most this often per CPU for matched opens. */
#define VIGIL_MATCH_WAKE_GAP_NS 1000000ULL

/* Whether a matched open wakes the reader at once: the first in VIGIL_MATCH_WAKE_GAP_NS on this
 * CPU does; the later ones wait for that wakeup's drain or the reader's timer (5 ms in the daemon).
 * A forced wakeup costs an irq_work and an IPI (~7 us on this VM, its APIC write a VM exit), so a
 * stream of opens under a prefix a rule names (/dev/shm under "/dev") paid it on every open. */
static __always_inline bool match_wake_due(void)
{
    __u32 key = 0;
    __u64 *last = bpf_map_lookup_elem(&match_wakes, &key);
    if (!last)
        return true;
    __u64 now = bpf_ktime_get_ns();
    bool due = now - *last >= VIGIL_MATCH_WAKE_GAP_NS;
    if (due)
        *last = now;
    key = due ? 1 : 2;
    __u64 *count = bpf_map_lookup_elem(&match_wakes, &key);
    if (count)
        *count += 1;
    return due;
}

/* DROP: no rule can match. PASS: userspace decides. MATCH: a rule's path entry matched (an
 * alert is likely: the reader is woken at once). KILL: a kernel_kill rule matched. */
enum open_verdict { OPEN_DROP, OPEN_PASS, OPEN_MATCH, OPEN_KILL };

#define BYTES(c) (0x0101010101010101ULL * (__u8)(c))
#define LOW7 0x7f7f7f7f7f7f7f7fULL

/* 0x80 in every byte of `w` that equals `c`, 0 in the others (exact: no carry crosses a byte). */
static __always_inline __u64 bytes_equal(__u64 w, char c)
{
    __u64 x = w ^ BYTES(c);
    return ~(((x & LOW7) + LOW7) | x | LOW7);
}

/* Index of the highest byte of `m` with its 0x80 bit set (m != 0, only 0x80 bits set). */
static __always_inline __u32 highest_byte(__u64 m)
{
    __u32 b = 0;
    if (m >> 32) {
        b += 4;
        m >>= 32;
    }
    if (m >> 16) {
        b += 2;
        m >>= 16;
    }
    if (m >> 8)
        b += 1;
    return b;
}

/* The state of scan_word over a name (see normal_form). */
struct scan_state {
    const __u64 *words;
    __u64 s, d;       /* the slashes and dots of the word being scanned (0x80 per byte) */
    __u64 bad;        /* non-zero once a `//`, `/./` or `/../` is found */
    __u64 last_mask;  /* the slashes of the last word that has one */
    __u32 last_word;
};

/* bpf_loop body for word `i` of the name: a slash followed by `/`, `./` or `../` makes it
 * non-normal; the masks are shifted against the next word's for the bytes that follow.
 * (bpf_loop: the verifier checks the body once, whatever the name's length.) */
static long scan_word(__u32 i, void *data)
{
    struct scan_state *st = data;
    if (i >= VIGIL_PUSHDOWN_PATH_MAX / 8)
        return 1;
    __u64 w = st->words[i + 1]; /* word 32 is the first of `spill` */
    __u64 s = st->s, d = st->d;
    __u64 sn = bytes_equal(w, '/'), dn = bytes_equal(w, '.');
    __u64 s1 = (s >> 8) | (sn << 56), s2 = (s >> 16) | (sn << 48), s3 = (s >> 24) | (sn << 40);
    __u64 d1 = (d >> 8) | (dn << 56), d2 = (d >> 16) | (dn << 48);
    st->bad = s & (s1 | (d1 & (s2 | (d2 & s3))));
    if (s) {
        st->last_word = i;
        st->last_mask = s;
    }
    st->s = sn;
    st->d = dn;
    return st->bad ? 1 : 0;
}

/* Whether the absolute name in `path` (`len` bytes, NUL at path[len], zeros after it up to
 * path[len + 16]) is in normal form: no `//`, `/./` or `/../` anywhere, no trailing `/`, `/.` or
 * `/..` (the root `/` alone is fine). Sets *last to the offset of its last slash.
 * Eight bytes at a time: per word, one mask of its slashes and one of its dots; no helper call
 * per byte. */
static __always_inline bool normal_form(const char *path, __u32 len, __u32 *last)
{
    const __u64 *words = (const __u64 *)path;
    struct scan_state st = { .words = words, .s = bytes_equal(words[0], '/'), .d = bytes_equal(words[0], '.') };
    bpf_loop((len >> 3) + 1, scan_word, &st, 0);
    if (st.bad)
        return false;
    if (len > 1) { /* the end: a trailing /, /. or /.. */
        char c1 = path[(len - 1) & (VIGIL_PUSHDOWN_PATH_MAX - 1)];
        char c2 = path[(len - 2) & (VIGIL_PUSHDOWN_PATH_MAX - 1)];
        if (c1 == '/' || (c1 == '.' && (c2 == '/' || (c2 == '.' && len > 2
                                                      && path[(len - 3) & (VIGIL_PUSHDOWN_PATH_MAX - 1)] == '/'))))
            return false;
    }
    *last = (st.last_word & (VIGIL_PUSHDOWN_PATH_MAX / 8 - 1)) * 8 + highest_byte(st.last_mask);
    return true;
}

/* Copies the basename at path[start] (`blen` bytes, 0 < blen < VIGIL_PUSHDOWN_BASENAME_MAX) into
 * the NUL-padded key, a word at a time: the words of the name that begin at or before its NUL end
 * in zeros (normal_form's contract), the later ones are zero. */
static __always_inline void copy_basename(struct open_lookup *l, __u32 start, __u32 blen)
{
    const char *from = &l->key.path[start & (VIGIL_PUSHDOWN_PATH_MAX - 1)];
    __u64 *to = (__u64 *)l->base.name;
#pragma unroll
    for (__u32 j = 0; j < VIGIL_PUSHDOWN_BASENAME_MAX / 8; j++)
        to[j] = j * 8 <= blen ? *(const __u64 *)(from + j * 8) : 0;
}

/* Whether a kill entry applies to the current command name. */
static __always_inline bool kill_applies(const struct vigil_path_rule *r)
{
    if (r->kill_comms == VIGIL_KILL_ANY_COMM)
        return true;
    struct vigil_kill_comm_key k = { .rule = r->kill_rule };
    bpf_get_current_comm(k.comm, sizeof(k.comm));
    bool listed = bpf_map_lookup_elem(&kill_comms, &k) != NULL;
    return r->kill_comms == VIGIL_KILL_COMMS_ONLY ? listed : !listed;
}

/* The file a successful open returned, found from its fd. */
struct opened {
    struct file *file;  /* NULL: none (the open failed, or the fd was already gone) */
    __u64 ino;
    __u32 dev;
    __u32 off;          /* where its path starts in the scratch path buffer (it ends at VIGIL_PATH_MAX) */
    bool created;       /* FMODE_CREATED */
    bool truncated;     /* its path was cut */
};

/* Fills `f` with the file descriptor `fd` refers to, and builds its path in s->path. */
static __always_inline void opened_file(struct vigil_scratch *s, __s32 fd, struct opened *f)
{
    struct file *file = vigil_fd_file(fd);
    if (!file)
        return;
    struct inode *inode = BPF_CORE_READ(file, f_inode);
    f->ino = BPF_CORE_READ(inode, i_ino);
    f->dev = BPF_CORE_READ(inode, i_sb, s_dev);
    f->created = (BPF_CORE_READ(file, f_mode) & FMODE_CREATED) != 0;
    struct path path = BPF_CORE_READ(file, f_path);
    f->off = vigil_build_path(s, &path, &f->truncated);
    f->file = file;
}

/* What to do with an open with `flags` that returned `result`. After a success (`f` names the
 * file) the file's path is compared, and its device and inode; after a failure, the name as given
 * (`filename`, a user pointer) when it is absolute and in normal form (no `//`, `/./`, `/../`, no
 * trailing `/`): then it is what userspace resolves it to (fd.name). Any other name, and a path of
 * VIGIL_PUSHDOWN_PATH_MAX bytes or more, passes: userspace decides. */
static __always_inline enum open_verdict open_verdict(const char *filename, __u32 flags, long result,
                                                      struct vigil_scratch *s, const struct opened *f)
{
    __u32 zero = 0;
    struct vigil_filter_config *cfg = bpf_map_lookup_elem(&filter, &zero);
    if (!cfg || !(cfg->flags & (VIGIL_FILTER_OPEN_PATHS | VIGIL_FILTER_OPEN_KILL)))
        return OPEN_PASS;
    __u16 class = VIGIL_OPEN_CLASS(flags & 3, result < 0, f->created);
    bool pass = !(cfg->flags & VIGIL_FILTER_OPEN_PATHS) || (cfg->open_classes & class);
    bool kill_on = cfg->flags & VIGIL_FILTER_OPEN_KILL;
    if (pass && !kill_on)
        return OPEN_PASS;

    struct open_lookup *l = bpf_map_lookup_elem(&open_lookup, &zero);
    if (!l)
        return OPEN_PASS;
    long n;
    if (f->file) {
        __u32 plen = VIGIL_PATH_MAX - f->off;
        if (f->truncated || plen >= VIGIL_PUSHDOWN_PATH_MAX)
            return OPEN_PASS; /* long: userspace decides */
        bpf_probe_read_kernel(l->key.path, plen & (VIGIL_PUSHDOWN_PATH_MAX - 1), &s->path[f->off & (VIGIL_PATH_MAX - 1)]);
        l->key.path[plen & (VIGIL_PUSHDOWN_PATH_MAX - 1)] = 0;
        n = plen + 1;
    } else {
        n = bpf_probe_read_user_str(l->key.path, VIGIL_PUSHDOWN_PATH_MAX, filename);
        if (n <= 1 || n >= VIGIL_PUSHDOWN_PATH_MAX || l->key.path[0] != '/')
            return OPEN_PASS; /* unreadable, empty, long or relative: userspace decides */
    }
    __u32 len = n - 1, last = 0;
    /* The bytes after the NUL hold an earlier name: zero the 16 the scan may look at. */
    *(__u64 *)&l->key.path[(len + 1) & (VIGIL_PUSHDOWN_PATH_MAX - 1)] = 0;
    *(__u64 *)&l->key.path[((len + 1) & (VIGIL_PUSHDOWN_PATH_MAX - 1)) + 8] = 0;
    if (!normal_form(l->key.path, len, &last))
        return OPEN_PASS;

    bool kill = false, matched = false;
    l->key.prefixlen = n * 8; /* the NUL included: exact entries match only exactly */
    struct vigil_path_rule *r = bpf_map_lookup_elem(&open_paths, &l->key);
    if (r) {
        matched = r->pass & class;
        kill = kill_on && (r->kill & class) && kill_applies(r);
    }
    __u32 blen = len - last - 1;
    if ((!(pass || matched) || (kill_on && !kill)) && (cfg->flags & VIGIL_FILTER_OPEN_BASENAMES) && blen > 0) {
        if (blen >= VIGIL_PUSHDOWN_BASENAME_MAX)
            return kill ? OPEN_KILL : OPEN_PASS; /* longer than any key: userspace decides */
        copy_basename(l, last + 1, blen);
        r = bpf_map_lookup_elem(&open_basenames, &l->base);
        if (r) {
            matched = matched || (r->pass & class);
            kill = kill || (kill_on && (r->kill & class) && kill_applies(r));
        }
    }
    if ((!(pass || matched) || (kill_on && !kill)) && f->file && (cfg->flags & VIGIL_FILTER_OPEN_INODES)) {
        struct vigil_inode_key k = { .ino = f->ino, .dev = f->dev };
        r = bpf_map_lookup_elem(&open_inodes, &k);
        if (r) {
            matched = matched || (r->pass & class);
            kill = kill || (kill_on && (r->kill & class) && kill_applies(r));
        }
    }
    if (kill)
        return OPEN_KILL;
    if (matched)
        return OPEN_MATCH;
    return pass ? OPEN_PASS : OPEN_DROP;
}

/* Builds and sends the event: the name as given, the base of a relative name, and the opened
 * file `f` (its path is in s->path; kept aside in the event scratch while the base is walked). */
static __always_inline int emit_open(const struct open_args *args, long result, enum open_verdict verdict,
                                     struct vigil_scratch *s, const struct opened *f)
{
    struct vigil_open_event *e;
    __u32 len;
    long n;

    e = (struct vigil_open_event *)s->event;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_OPEN, 0);
    e->result = result;
    e->flags_arg = args->flags;
    e->mode = args->mode;
    e->dirfd = args->dirfd;
    e->syscall = args->syscall;
    e->flags = verdict == OPEN_KILL ? VIGIL_OPEN_KILLED : 0;
    e->base_len = 0;

    n = bpf_probe_read_user_str(e->data, VIGIL_FILENAME_MAX, args->filename);
    len = n > 0 ? n - 1 : 0;
    if (len == VIGIL_FILENAME_MAX - 1)
        e->flags |= VIGIL_OPEN_NAME_TRUNCATED;
    e->name_len = len;

    __u32 plen = VIGIL_PATH_MAX - (f->off & (VIGIL_PATH_MAX - 1));
    if (plen > VIGIL_PATH_MAX)
        plen = VIGIL_PATH_MAX;
    const char *file_path = &s->path[f->off & (VIGIL_PATH_MAX - 1)];
    if (len == 0 || e->data[0] != '/') {
        if (f->file) { /* the base's walk reuses s->path */
            bpf_probe_read_kernel(&s->event[OPEN_FILE_STASH], plen, file_path);
            file_path = &s->event[OPEN_FILE_STASH];
        }
        struct path base;
        if (vigil_base_path(args->dirfd, &base)) {
            bool truncated = false;
            __u32 off = vigil_build_path(s, &base, &truncated);
            e->base_len = vigil_append_path(s, e->data, len, off);
            if (truncated)
                e->flags |= VIGIL_OPEN_BASE_TRUNCATED;
        } else {
            e->flags |= VIGIL_OPEN_BASE_UNKNOWN;
        }
    }
    __u64 size = sizeof(*e) + len + e->base_len;
    if (f->file) {
        __u32 pos = len + e->base_len;
        struct vigil_open_file of = { .ino = f->ino, .dev = f->dev, .path_len = plen };
        e->flags |= VIGIL_OPEN_FILE;
        if (f->created)
            e->flags |= VIGIL_OPEN_CREATED;
        if (f->truncated)
            e->flags |= VIGIL_OPEN_FILE_TRUNCATED;
        bpf_probe_read_kernel(e->data + (pos & (VIGIL_PATH_MAX * 2 - 1)), sizeof(of), &of);
        pos += sizeof(of);
        bpf_probe_read_kernel(e->data + (pos & (VIGIL_PATH_MAX * 2 - 1)), plen, file_path);
        size += sizeof(of) + plen;
    }
    e->hdr.size = size;
    /* A rule matched in the kernel: the high lane, and its alert does not wait for the reader's
     * timer (match_wake_due: at most one forced wakeup per millisecond and CPU). Any other open
     * is the low lane. */
    if (verdict == OPEN_MATCH || verdict == OPEN_KILL)
        vigil_output_wake(e, size & (VIGIL_EVENT_SCRATCH - 1), match_wake_due());
    else
        vigil_output_low(e, size & (VIGIL_EVENT_SCRATCH - 1));
    return 0;
}

/* Filters, decides, kills (SIGKILL before the task returns to user mode: it runs no further
 * instruction of its own) and emits one open. */
static __always_inline int handle_open(const struct open_args *args, long result)
{
    if (vigil_filtered())
        return 0;
    struct vigil_scratch *s = vigil_scratch();
    if (!s)
        return 0;
    struct opened f = {};
    if (result >= 0)
        opened_file(s, (__s32)result, &f);
    enum open_verdict verdict = open_verdict(args->filename, args->flags, result, s, &f);
    if (verdict == OPEN_DROP) {
        vigil_count(VIGIL_COUNTER_FILTERED);
        return 0;
    }
    if (verdict == OPEN_KILL) {
        bpf_send_signal(9 /* SIGKILL */);
        vigil_count(VIGIL_COUNTER_KILLED);
    }
    return emit_open(args, result, verdict, s, &f);
}

/* --- variant: fexit on do_sys_openat2 (arguments and result in one hook) --- */

SEC("?fexit/do_sys_openat2")
int BPF_PROG(open_fexit, int dfd, const char *filename, struct open_how *how, long ret)
{
    struct open_args args = {
        .filename = filename,
        .dirfd = dfd,
        .syscall = VIGIL_OPEN_OPENAT,
        .flags = BPF_CORE_READ(how, flags),
        .mode = BPF_CORE_READ(how, mode),
    };
    return handle_open(&args, ret);
}

/* --- variant: the syscalls' exit tracepoints; the arguments come from the task's saved user
 * registers (one program per open instead of an entry and an exit program with a map between
 * them; the name has been copied by the kernel by then, so its page is present) --- */

SEC("?tracepoint/syscalls/sys_exit_openat")
int openat_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *regs = vigil_user_regs();
    struct open_args args = { .filename = (const char *)VIGIL_SYSCALL_ARG1(regs), .dirfd = (__s32)VIGIL_SYSCALL_ARG0(regs),
                              .syscall = VIGIL_OPEN_OPENAT, .flags = VIGIL_SYSCALL_ARG2(regs), .mode = VIGIL_SYSCALL_ARG3(regs) };
    return handle_open(&args, ctx->ret);
}

SEC("?tracepoint/syscalls/sys_exit_open")
int open_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *regs = vigil_user_regs();
    struct open_args args = { .filename = (const char *)VIGIL_SYSCALL_ARG0(regs), .dirfd = AT_FDCWD,
                              .syscall = VIGIL_OPEN_OPEN, .flags = VIGIL_SYSCALL_ARG1(regs), .mode = VIGIL_SYSCALL_ARG2(regs) };
    return handle_open(&args, ctx->ret);
}

SEC("?tracepoint/syscalls/sys_exit_openat2")
int openat2_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *regs = vigil_user_regs();
    struct open_how how = {};
    bpf_probe_read_user(&how, sizeof(how), (void *)VIGIL_SYSCALL_ARG2(regs));
    struct open_args args = { .filename = (const char *)VIGIL_SYSCALL_ARG1(regs), .dirfd = (__s32)VIGIL_SYSCALL_ARG0(regs),
                              .syscall = VIGIL_OPEN_OPENAT2, .flags = how.flags, .mode = how.mode };
    return handle_open(&args, ctx->ret);
}
