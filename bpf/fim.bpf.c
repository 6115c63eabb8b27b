// SPDX-License-Identifier: GPL-2.0
/* fim sensor (issue 14): changes to watched files and directories, matched in the kernel.
 *
 * Watches are kept by userspace (VigilSensors/FIMSensor.swift) in four maps:
 *   fim_inodes   (dev, ino) of every watched file (VIGIL_FIM_FILE), watched directory
 *                (VIGIL_FIM_DIR) and directory holding a watched file (VIGIL_FIM_PARENT)
 *   fim_names    (directory, name) of every watched file -> the inode now at that name
 *   fim_dirs     (root, absolute path) of every directory in fim_inodes -> its inode; the root is
 *                the (dev, ino) of the root directory the path is seen from (the host's, or a
 *                container's: the same text names different directories in each)
 *   fim_created  (directory, name) -> inode of files recently created in PARENT/DIR directories (LRU)
 *
 * Hooks: each syscall's own exit tracepoint (syscalls/sys_exit_NAME; the arguments come from the
 * task's saved user registers), never the generic sys_enter/sys_exit: only these syscalls pay.
 * A change is reported only when it succeeded. Syscalls taking an fd match by the fd's inode
 * (fd -> struct file -> inode, CO-RE); syscalls taking paths match by (directory, name): an
 * absolute path's directory is looked up in fim_dirs by its text, a relative single name's
 * directory is the dirfd's (or the cwd's) inode (leading "./" dropped), a relative "dir/name"'s
 * directory by the text of the dirfd's (or cwd's) absolute path (walked from its dentry), '/'
 * and "dir". A path with ".." or "//", or whose directory text does not fit a key, is passed
 * on, flagged VIGIL_FIM_UNRESOLVED, for userspace to resolve. Everything else is dropped here
 * and counted (VIGIL_COUNTER_FILTERED).
 *
 * Atomic rename: at the exit of a rename over a watched name, the inode that was there leaves
 * fim_inodes and the one now there enters it (known from the other end's watched name, or from
 * fim_created, filled by the open that created the temporary file), before the task returns to
 * user mode: nothing written to the new file is missed. When the new inode is not known (a file
 * made before the sensor started, or outside a watched file's directory) the name is marked stale
 * (ino 0) and the next open of the name re-keys it (VIGIL_FIM_STALE, then VIGIL_FIM_REKEYED).
 *
 * Records are syscall records (struct vigil_syscall_event, the table's syscall number, raw
 * arguments, the path arguments captured) with VIGIL_SYSCALL_FIM and a struct vigil_fim_match
 * after the data: decoded by the one decoder (SyscallArguments). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h" /* vigil_base_path, vigil_build_path (its filter maps stay unused: sized 1 by FIMSensor) */

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_syscall_event);
VIGIL_ABI_TYPE(vigil_inode_key);
VIGIL_ABI_TYPE(vigil_fim_watch);
VIGIL_ABI_TYPE(vigil_fim_name_key);
VIGIL_ABI_TYPE(vigil_fim_name);
VIGIL_ABI_TYPE(vigil_fim_dir_key);
VIGIL_ABI_TYPE(vigil_fim_match);

#define AT_FDCWD VIGIL_AT_FDCWD
#define O_CREAT 0100
#define O_TRUNC 01000
#define RENAME_EXCHANGE 2
#define FMODE_CREATED 0x100000 /* include/linux/fs.h (a macro, not in BTF) */
#define FMODE_WRITE 0x2

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 131072);
    __type(key, struct vigil_inode_key);
    __type(value, struct vigil_fim_watch);
} fim_inodes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 131072);
    __type(key, struct vigil_fim_name_key);
    __type(value, struct vigil_fim_name);
} fim_names SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, struct vigil_fim_dir_key);
    __type(value, struct vigil_inode_key);
} fim_dirs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, struct vigil_fim_name_key);
    __type(value, struct vigil_inode_key);
} fim_created SEC(".maps");

/* Captured path arguments: at most two, each bounded by VIGIL_FIM_PATH_MAX (with its NUL). */
#define FIM_DATA (2 * VIGIL_FIM_PATH_MAX)

/* Per-CPU room: the record being built (event, data, match trailer; `slack` keeps every masked
 * offset plus a bounded copy inside), the two resolved ends and a directory key. */
struct fim_scratch {
    char record[sizeof(struct vigil_syscall_event) + FIM_DATA + VIGIL_FIM_NAME_MAX + sizeof(struct vigil_fim_match) + 8];
    struct vigil_fim_name_key end[2];
    struct vigil_fim_dir_key dir;
    char dir_slack[VIGIL_FIM_PATH_MAX]; /* room for a bounded copy past dir (rejected before it is used) */
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct fim_scratch);
} fim_scratch SEC(".maps");

/* The record being built, and its data. */
#define EV(s) ((struct vigil_syscall_event *)(s)->record)
#define DATA(s) ((s)->record + sizeof(struct vigil_syscall_event))

/* Vigil's own process (vigil_ignore_tgid, set before load): its changes are not reported. */
static __always_inline bool is_self(void)
{
    return vigil_is_self();
}

static __always_inline void drop(void)
{
    vigil_count(VIGIL_COUNTER_FILTERED);
}

static __always_inline struct vigil_inode_key inode_key(struct inode *inode)
{
    struct vigil_inode_key k = {};
    k.ino = BPF_CORE_READ(inode, i_ino);
    k.dev = BPF_CORE_READ(inode, i_sb, s_dev);
    return k;
}

static __always_inline struct fim_scratch *fim_buf(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&fim_scratch, &zero);
}

/* What the exit tracepoint gives: the syscall number and its result (read once, at the start:
 * the verifier refuses a context pointer the compiler has offset). */
struct exit_ctx {
    long ret;
    int nr;
};
#define EXIT_CTX(ctx) ((struct exit_ctx){ .ret = (ctx)->ret, .nr = (ctx)->nr })

/* Starts a record for the syscall of `x` (arguments, result; no captured data yet). */
static __always_inline void begin(struct fim_scratch *s, const struct exit_ctx *x, const __u64 *args)
{
    struct vigil_syscall_event *e = EV(s);
    vigil_fill_header(&e->hdr, VIGIL_EVENT_SYSCALL, 0);
    e->latency_ns = 0;
    e->ret = x->ret;
    e->nr = x->nr;
    e->flags = VIGIL_SYSCALL_FIM;
    e->data_len = 0;
    e->arg_truncated = 0;
    e->arg_failed = 0;
    e->_pad = 0;
#pragma unroll
    for (int i = 0; i < VIGIL_SYSCALL_ARGS; i++) {
        e->args[i] = args[i];
        e->arg_len[i] = 0;
    }
}

/* Captures path argument `i` into the data (its bytes without the NUL); returns where it starts
 * and sets *len, or -1 when it could not be read. */
static __always_inline int capture_path(struct fim_scratch *s, int i, __u32 *len)
{
    struct vigil_syscall_event *e = EV(s);
    __u32 pos = e->data_len;
    if (pos > FIM_DATA - VIGIL_FIM_PATH_MAX)
        return -1;
    long n = bpf_probe_read_user_str(DATA(s) + (pos & (FIM_DATA - 1)), VIGIL_FIM_PATH_MAX,
                                     (const void *)e->args[i & 7]);
    if (n <= 0) {
        e->arg_failed |= 1 << i;
        return -1;
    }
    if (n == VIGIL_FIM_PATH_MAX)
        e->arg_truncated |= 1 << i;
    n -= 1;
    e->arg_len[i & 7] = n;
    e->data_len = pos + n;
    *len = n;
    return pos;
}

/* Finds the last '/' of a captured path (bpf_loop: the verifier checks the body once). */
struct slash_scan {
    struct fim_scratch *s;
    __u32 pos;
    __u32 len;
    int last;
    char prev;
    bool odd;   /* ".." or "//" somewhere: not in the normal form fim_dirs keys are in */
};

static long slash_step(__u32 j, void *data)
{
    struct slash_scan *c = data;
    if (j >= c->len)
        return 1;
    char ch = DATA(c->s)[(c->pos + j) & (FIM_DATA - 1)];
    if (ch == '/')
        c->last = j;
    if ((ch == '.' && c->prev == '.') || (ch == '/' && c->prev == '/'))
        c->odd = true;
    c->prev = ch;
    return 0;
}

enum resolved { RES_NONE, RES_KEY, RES_UNRESOLVED };

/* The inode of directory fd `dirfd` (AT_FDCWD: the cwd). */
static __always_inline bool dirfd_inode(int dirfd, struct vigil_inode_key *k)
{
    struct path base;
    if (!vigil_base_path(dirfd, &base))
        return false;
    struct inode *inode = BPF_CORE_READ(base.dentry, d_inode);
    if (!inode)
        return false;
    *k = inode_key(inode);
    return true;
}

/* The root directory of the current task (fs->root: a container's, or the host's), the first
 * part of fim_dirs keys: "/etc" names a different directory in each container. */
static __always_inline struct vigil_inode_key task_root(void)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    return inode_key(BPF_CORE_READ(task, fs, root.dentry, d_inode));
}

/* The fim_dirs key of a relative directory part (data[pos, pos+len), no trailing '/') below
 * `dirfd`: the base directory's absolute path (walked from its dentry), '/', the part. False when
 * it does not fit a key (then it names no watched directory). */
static __always_inline bool relative_dir_key(struct fim_scratch *s, __u32 pos, __u32 len, int dirfd)
{
    struct path base;
    if (!vigil_base_path(dirfd, &base))
        return false;
    struct vigil_scratch *ps = vigil_scratch();
    if (!ps)
        return false;
    bool truncated = false;
    __u32 off = vigil_build_path(ps, &base, &truncated);
    if (truncated)
        return false;
    __u32 blen = VIGIL_PATH_MAX - off;
    if (blen == 1)
        blen = 0; /* the base is "/": the part follows the '/' added below */
    if (blen + 1 + len >= VIGIL_FIM_PATH_MAX)
        return false;
    __builtin_memset(&s->dir, 0, sizeof(s->dir));
    s->dir.root = task_root();
    bpf_probe_read_kernel(s->dir.path, blen & (VIGIL_FIM_PATH_MAX - 1), &ps->path[off & (VIGIL_PATH_MAX - 1)]);
    s->dir.path[blen & (VIGIL_FIM_PATH_MAX - 1)] = '/';
    bpf_probe_read_kernel(s->dir.path + ((blen + 1) & (VIGIL_FIM_PATH_MAX - 1)), len & (VIGIL_FIM_PATH_MAX - 1),
                          DATA(s) + (pos & (FIM_DATA - 1)));
    return true;
}

/* Resolves the path captured at data[pos, pos+len) against `dirfd` into (directory inode, name). */
static __always_inline enum resolved resolve(struct fim_scratch *s, __u32 pos, __u32 len, int dirfd,
                                             struct vigil_fim_name_key *k)
{
    if (!len || len >= VIGIL_FIM_PATH_MAX)
        return RES_NONE;
    /* "./name", "././dir/name" (as sed -i names its temporary file): the same as without */
#pragma unroll
    for (int i = 0; i < 4; i++) {
        if (len > 2 && DATA(s)[pos & (FIM_DATA - 1)] == '.' && DATA(s)[(pos + 1) & (FIM_DATA - 1)] == '/') {
            pos += 2;
            len -= 2;
        }
    }
    struct slash_scan c = { .s = s, .pos = pos, .len = len, .last = -1 };
    bpf_loop(VIGIL_FIM_PATH_MAX, slash_step, &c, 0);
    int last = c.last;
    if (c.odd && last >= 0)
        return RES_UNRESOLVED; /* "..", "//": userspace folds it */
    __builtin_memset(k, 0, sizeof(*k));
    bool absolute = DATA(s)[pos & (FIM_DATA - 1)] == '/';
    if (last < 0) {
        if (!dirfd_inode(dirfd, &k->dir))
            return RES_NONE;
    } else if (absolute) {
        __builtin_memset(&s->dir, 0, sizeof(s->dir));
        s->dir.root = task_root();
        if (last == 0)
            s->dir.path[0] = '/';
        else
            bpf_probe_read_kernel(s->dir.path, last & (VIGIL_FIM_PATH_MAX - 1), DATA(s) + (pos & (FIM_DATA - 1)));
        struct vigil_inode_key *d = bpf_map_lookup_elem(&fim_dirs, &s->dir);
        if (!d)
            return RES_NONE;
        k->dir = *d;
    } else {
        /* "dir/name" below dirfd or the cwd: its directory by the absolute text */
        if (!relative_dir_key(s, pos, last, dirfd))
            return RES_UNRESOLVED;
        struct vigil_inode_key *d = bpf_map_lookup_elem(&fim_dirs, &s->dir);
        if (!d)
            return RES_NONE;
        k->dir = *d;
    }
    __u32 start = pos + last + 1;
    __u32 n = len - last - 1;
    if (n == 0)
        return RES_NONE; /* a trailing '/' */
    if (n > VIGIL_FIM_NAME_MAX - 1)
        n = VIGIL_FIM_NAME_MAX - 1;
    bpf_probe_read_kernel(k->name, n & (VIGIL_FIM_NAME_MAX - 1), DATA(s) + (start & (FIM_DATA - 1)));
    return RES_KEY;
}

/* How one resolved end matches, filling the match's file and watch when it is the first to. */
static __always_inline __u32 classify(enum resolved r, struct vigil_fim_name_key *k, struct vigil_fim_match *m,
                                      struct vigil_fim_name **name)
{
    *name = NULL;
    if (r == RES_UNRESOLVED)
        return VIGIL_FIM_UNRESOLVED;
    if (r != RES_KEY)
        return 0;
    struct vigil_fim_name *nm = bpf_map_lookup_elem(&fim_names, k);
    if (nm) {
        *name = nm;
        if (!m->id) {
            m->file = nm->file;
            m->id = nm->watch.id;
        }
        return VIGIL_FIM_BY_NAME;
    }
    struct vigil_fim_watch *w = bpf_map_lookup_elem(&fim_inodes, &k->dir);
    if (w && (w->flags & VIGIL_FIM_DIR)) {
        if (!m->id) {
            m->file = k->dir;
            m->id = w->id;
        }
        return VIGIL_FIM_IN_DIR;
    }
    return 0;
}

/* Sends the record with its match after the data. */
static __always_inline int emit(struct fim_scratch *s, struct vigil_fim_match *m)
{
    struct vigil_syscall_event *e = EV(s);
    __u32 at = (e->data_len + 7) & ~7;
    if (at > FIM_DATA)
        at = FIM_DATA;
    __builtin_memcpy(DATA(s) + at, m, sizeof(*m));
    __u64 size = sizeof(*e) + at + sizeof(*m);
    e->hdr.size = size;
    vigil_output(e, size);
    return 0;
}

/* Makes `file` the inode watched at name `nm` (its old inode leaves fim_inodes). */
static __always_inline void rekey(struct vigil_fim_name *nm, struct vigil_inode_key *file)
{
    if (nm->file.ino)
        bpf_map_delete_elem(&fim_inodes, &nm->file);
    if (file && file->ino) {
        struct vigil_fim_watch w = { .id = nm->watch.id, .flags = VIGIL_FIM_FILE };
        bpf_map_update_elem(&fim_inodes, file, &w, BPF_ANY);
        nm->file = *file;
    } else {
        __builtin_memset(&nm->file, 0, sizeof(nm->file));
    }
}

/* --- syscalls taking an fd: write, pwrite64, writev, pwritev, pwritev2, ftruncate, fallocate,
 * fchmod, fchown, fsetxattr, fremovexattr; and the copies into one: copy_file_range, splice (the
 * fd written is their third argument), sendfile --- */

/* Reports a change through a watched file's inode `k` (its watch `w`). */
static __always_inline int report_fd(const struct exit_ctx *x, struct vigil_inode_key *k, struct vigil_fim_watch *w)
{
    struct fim_scratch *s = fim_buf();
    if (!s)
        return 0;
    __u64 args[VIGIL_SYSCALL_ARGS];
    vigil_syscall_args(args, vigil_user_regs());
    begin(s, x, args);
    struct vigil_fim_match m = { .file = *k, .id = w->id, .how = VIGIL_FIM_BY_INODE };
    return emit(s, &m);
}

/* A change through the fd in argument `arg` (0, 2 or 4) of the syscall that returned x->ret.
 * Every write to any file pays this: with vigil_rdonly_cast the fd's inode comes by plain loads
 * (no helper call), else by about nine probe reads; then one hash lookup. The check for Vigil's
 * own process comes after the lookup (it only keeps its writes out of the count). */
static __always_inline int on_fd(const struct exit_ctx *x, int arg)
{
    if (x->ret < 0)
        return 0;
    struct task_struct *task = bpf_get_current_task_btf();
    struct pt_regs *r = (struct pt_regs *)bpf_task_pt_regs(task);
    __s32 fd = (__s32)(arg == 4 ? VIGIL_SYSCALL_ARG4(r) : arg == 2 ? VIGIL_SYSCALL_ARG2(r) : VIGIL_SYSCALL_ARG0(r));
    struct vigil_inode_key k = {};
    if (vigil_rdonly_cast) {
        struct file *file = vigil_fd_file_typed(task, fd);
        if (file) {
            struct inode *inode = file->f_inode;
            k.ino = inode->i_ino;
            k.dev = inode->i_sb->s_dev;
        }
    } else {
        struct file *file = vigil_fd_file(fd);
        if (file)
            k = inode_key(BPF_CORE_READ(file, f_inode));
    }
    struct vigil_fim_watch *w = k.ino ? bpf_map_lookup_elem(&fim_inodes, &k) : NULL;
    bool self = vigil_task_is_self(task);
    if (!w || !(w->flags & VIGIL_FIM_FILE)) {
        if (!self)
            drop();
        return 0;
    }
    if (self)
        return 0;
    return report_fd(x, &k, w);
}

/* --- variant fexit: vfs_write (write, pwrite64) hands the file typed: its inode in three direct
 * loads, not the fd table walk of the tracepoint programs (what an unwatched write costs). The
 * syscall number is the task's (orig_ax); a vfs_write outside a syscall
 * (orig_ax < 0) is not reported. --- */

SEC("?fexit/vfs_write")
int BPF_PROG(vfs_write_fexit, struct file *file, const char *buf, size_t count, loff_t *pos, long ret)
{
    if (ret < 0 || is_self())
        return 0;
    struct inode *inode = file->f_inode;
    struct vigil_inode_key k = { .ino = inode->i_ino, .dev = inode->i_sb->s_dev };
    struct vigil_fim_watch *w = bpf_map_lookup_elem(&fim_inodes, &k);
    if (!w || !(w->flags & VIGIL_FIM_FILE)) {
        drop();
        return 0;
    }
    long nr = VIGIL_SYSCALL_NR(vigil_user_regs());
    if (nr < 0)
        return 0;
    struct exit_ctx x = { .ret = ret, .nr = (int)nr };
    return report_fd(&x, &k, w);
}

/* --- variant tracepoint (and fexit, but for write and pwrite64): each syscall's exit --- */

/* Program `sys`_exit on tracepoint sys_exit_`tp`, the fd written in argument `arg`. */
#define FIM_FD_AT(sys, tp, arg) \
    SEC("?tracepoint/syscalls/sys_exit_" #tp) \
    int sys##_exit(struct syscall_trace_exit *ctx) { struct exit_ctx x = EXIT_CTX(ctx); return on_fd(&x, arg); }
#define FIM_FD(sys) FIM_FD_AT(sys, sys, 0)

FIM_FD(write)
FIM_FD(pwrite64)
FIM_FD(writev)
FIM_FD(pwritev)
FIM_FD(pwritev2)
FIM_FD(ftruncate)
FIM_FD(fallocate)
FIM_FD(fchmod)
FIM_FD(fchown)
FIM_FD(fsetxattr)
FIM_FD(fremovexattr)
FIM_FD_AT(copy_file_range, copy_file_range, 2)
FIM_FD_AT(splice, splice, 2)
FIM_FD_AT(sendfile, sendfile64, 0)

#define PROT_WRITE 0x2
#define MAP_SHARED 0x1 /* MAP_SHARED_VALIDATE (0x3) has it too */
/* A shared mapping of a watched file that is or can become writable: the writes through it make
 * no syscall, so the mapping is the change the kernel can see (userspace re-reads the file while
 * a process maps it, and once after). Writable: PROT_WRITE, or the file open for writing (then
 * mprotect can add PROT_WRITE later, with no new mmap to see). Private mappings, and read-only
 * ones of a file open read-only, are dropped. */
SEC("?tracepoint/syscalls/sys_exit_mmap")
int mmap_exit(struct syscall_trace_exit *ctx)
{
    struct exit_ctx x = EXIT_CTX(ctx);
    struct pt_regs *r = vigil_user_regs();
    bool shared = VIGIL_SYSCALL_ARG3(r) & MAP_SHARED;
    if (shared && !(VIGIL_SYSCALL_ARG2(r) & PROT_WRITE)) {
        struct file *file = vigil_fd_file((__s32)VIGIL_SYSCALL_ARG4(r));
        shared = file && (BPF_CORE_READ(file, f_mode) & FMODE_WRITE);
    }
    if (!shared) {
        if (x.ret >= 0)
            drop();
        return 0;
    }
    return on_fd(&x, 4);
}

/* --- syscalls taking paths --- */

enum op {
    FIM_OP_CHANGE,  /* chmod, chown, truncate, setxattr, ...: the named file changed */
    FIM_OP_REMOVE,  /* unlink, rmdir: the name is gone */
    FIM_OP_CREATE,  /* mkdir, mknod, symlink: a new name */
    FIM_OP_RENAME,  /* rename: first -> second */
    FIM_OP_LINK,    /* link: second is a new name of first's inode */
};

/* One path syscall: path argument p1 relative to dirfd argument d1 (-1: AT_FDCWD) and, for
 * rename and link, p2 relative to d2 (p2 < 0: none). */
static __always_inline int on_paths(const struct exit_ctx *x, int d1, int p1, int d2, int p2, enum op op,
                                    __u64 exchange_flag_arg)
{
    if (x->ret < 0 || is_self())
        return 0;
    struct fim_scratch *s = fim_buf();
    if (!s)
        return 0;
    __u64 args[VIGIL_SYSCALL_ARGS];
    vigil_syscall_args(args, vigil_user_regs());
    begin(s, x, args);
    struct vigil_fim_match m = {};
    struct vigil_fim_name *n1 = NULL, *n2 = NULL;
    __u32 len1 = 0, len2 = 0;
    int pos1 = capture_path(s, p1, &len1);
    enum resolved r1 = RES_NONE, r2 = RES_NONE;
    if (pos1 >= 0)
        r1 = resolve(s, pos1, len1, d1 < 0 ? AT_FDCWD : (int)args[d1 & 7], &s->end[0]);
    if (p2 >= 0) {
        int pos2 = capture_path(s, p2, &len2);
        if (pos2 >= 0)
            r2 = resolve(s, pos2, len2, d2 < 0 ? AT_FDCWD : (int)args[d2 & 7], &s->end[1]);
        /* the second end first: a rename over a watched name reports the name's inode */
        __u32 how2 = classify(r2, &s->end[1], &m, &n2);
        if (how2)
            m.how |= how2 | VIGIL_FIM_SECOND;
    }
    m.how |= classify(r1, &s->end[0], &m, &n1);
    if (!m.how) {
        drop();
        return 0;
    }

    if (op == FIM_OP_REMOVE && n1) {
        rekey(n1, NULL);
        m.how |= VIGIL_FIM_STALE;
    } else if (op == FIM_OP_RENAME || op == FIM_OP_LINK) {
        bool exchange = exchange_flag_arg < VIGIL_SYSCALL_ARGS && (args[exchange_flag_arg & 7] & RENAME_EXCHANGE);
        /* the inode now at the second name: the first end's watched file, else a file created
         * in a watched file's directory under the first name */
        struct vigil_inode_key moved = {};
        if (n1 && n1->file.ino)
            moved = n1->file;
        else if (r1 == RES_KEY) {
            struct vigil_inode_key *c = bpf_map_lookup_elem(&fim_created, &s->end[0]);
            if (c) {
                moved = *c;
                if (op == FIM_OP_RENAME)
                    bpf_map_delete_elem(&fim_created, &s->end[0]);
            }
        }
        if (exchange) {
            /* both names now hold the other's inode: re-keyed at their next open */
            if (n1)
                rekey(n1, NULL);
            if (n2)
                rekey(n2, NULL);
            m.how |= VIGIL_FIM_STALE;
        } else {
            if (op == FIM_OP_RENAME && n1) {
                /* the watched inode left its name; the name is empty until something comes */
                struct vigil_inode_key keep = n1->file;
                __builtin_memset(&n1->file, 0, sizeof(n1->file));
                if (!n2 && keep.ino)
                    bpf_map_delete_elem(&fim_inodes, &keep);
                m.how |= VIGIL_FIM_STALE;
            }
            if (n2) {
                rekey(n2, moved.ino ? &moved : NULL);
                m.how |= moved.ino ? VIGIL_FIM_REKEYED : VIGIL_FIM_STALE;
                m.new_file = moved;
            } else if ((m.how & VIGIL_FIM_IN_DIR) && (m.how & VIGIL_FIM_SECOND) && moved.ino) {
                /* a file arrives in a watched directory: watched from now on */
                struct vigil_fim_watch w = { .id = m.id, .flags = VIGIL_FIM_FILE };
                bpf_map_update_elem(&fim_inodes, &moved, &w, BPF_ANY);
                m.how |= VIGIL_FIM_REKEYED;
                m.new_file = moved;
            }
        }
    } else if (op == FIM_OP_CREATE && n1) {
        m.how |= VIGIL_FIM_STALE; /* a symlink or node at a watched name: known at its next open */
    }
    return emit(s, &m);
}

#define FIM_PATH(sys, d1, p1, op) \
    SEC("?tracepoint/syscalls/sys_exit_" #sys) \
    int sys##_exit(struct syscall_trace_exit *ctx) { struct exit_ctx x = EXIT_CTX(ctx); return on_paths(&x, d1, p1, -1, -1, op, 8); }
#define FIM_PATH2(sys, d1, p1, d2, p2, op, flags) \
    SEC("?tracepoint/syscalls/sys_exit_" #sys) \
    int sys##_exit(struct syscall_trace_exit *ctx) { struct exit_ctx x = EXIT_CTX(ctx); return on_paths(&x, d1, p1, d2, p2, op, flags); }

/* A change through (dirfd, path) whose path may be empty (AT_EMPTY_PATH): then the change is
 * of dirfd's own file, matched as the fd-based calls are. */
static __always_inline bool empty_path_arg1(void)
{
    char c = 1;
    struct pt_regs *r = vigil_user_regs();
    bpf_probe_read_user(&c, 1, (const void *)VIGIL_SYSCALL_ARG1(r));
    return c == 0;
}
#define FIM_PATH_OR_FD(sys) \
    SEC("?tracepoint/syscalls/sys_exit_" #sys) \
    int sys##_exit(struct syscall_trace_exit *ctx) { \
        struct exit_ctx x = EXIT_CTX(ctx); \
        if (x.ret >= 0 && empty_path_arg1()) \
            return on_fd(&x, 0); \
        return on_paths(&x, 0, 1, -1, -1, FIM_OP_CHANGE, 8); \
    }

FIM_PATH(truncate, -1, 0, FIM_OP_CHANGE)
FIM_PATH(chmod, -1, 0, FIM_OP_CHANGE)
FIM_PATH(fchmodat, 0, 1, FIM_OP_CHANGE)
FIM_PATH_OR_FD(fchmodat2)
FIM_PATH(chown, -1, 0, FIM_OP_CHANGE)
FIM_PATH(lchown, -1, 0, FIM_OP_CHANGE)
FIM_PATH_OR_FD(fchownat)
FIM_PATH_OR_FD(setxattrat)
FIM_PATH_OR_FD(removexattrat)
FIM_PATH_OR_FD(file_setattr)
FIM_PATH(setxattr, -1, 0, FIM_OP_CHANGE)
FIM_PATH(lsetxattr, -1, 0, FIM_OP_CHANGE)
FIM_PATH(removexattr, -1, 0, FIM_OP_CHANGE)
FIM_PATH(lremovexattr, -1, 0, FIM_OP_CHANGE)
FIM_PATH(unlink, -1, 0, FIM_OP_REMOVE)
FIM_PATH(unlinkat, 0, 1, FIM_OP_REMOVE)
FIM_PATH(rmdir, -1, 0, FIM_OP_REMOVE)
FIM_PATH(mkdir, -1, 0, FIM_OP_CREATE)
FIM_PATH(mkdirat, 0, 1, FIM_OP_CREATE)
FIM_PATH(mknod, -1, 0, FIM_OP_CREATE)
FIM_PATH(mknodat, 0, 1, FIM_OP_CREATE)
FIM_PATH(symlink, -1, 1, FIM_OP_CREATE)
FIM_PATH(symlinkat, 1, 2, FIM_OP_CREATE)
FIM_PATH2(rename, -1, 0, -1, 1, FIM_OP_RENAME, 8)
FIM_PATH2(renameat, 0, 1, 2, 3, FIM_OP_RENAME, 8)
FIM_PATH2(renameat2, 0, 1, 2, 3, FIM_OP_RENAME, 4)
FIM_PATH2(link, -1, 0, -1, 1, FIM_OP_LINK, 8)
FIM_PATH2(linkat, 0, 1, 2, 3, FIM_OP_LINK, 8)

/* --- opens: creation in watched directories, O_TRUNC of watched files, re-keying a stale name --- */

static __always_inline int on_open(const struct exit_ctx *x, int p, __u32 flags)
{
    if (x->ret < 0 || is_self())
        return 0;
    struct file *file = vigil_fd_file((__s32)x->ret);
    if (!file)
        return 0;
    struct vigil_inode_key k = inode_key(BPF_CORE_READ(file, f_inode));
    struct vigil_fim_watch *w = bpf_map_lookup_elem(&fim_inodes, &k);
    struct vigil_fim_match m = { .file = k };
    if (w && (w->flags & VIGIL_FIM_FILE)) {
        if (!(flags & O_TRUNC)) {
            drop();
            return 0;
        }
        m.id = w->id;
        m.how = VIGIL_FIM_BY_INODE;
        goto report;
    }
    struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
    struct vigil_inode_key dir = inode_key(BPF_CORE_READ(dentry, d_parent, d_inode));
    struct vigil_fim_watch *pw = bpf_map_lookup_elem(&fim_inodes, &dir);
    if (!pw || !(pw->flags & (VIGIL_FIM_PARENT | VIGIL_FIM_DIR))) {
        drop();
        return 0;
    }
    struct fim_scratch *s = fim_buf();
    if (!s)
        return 0;
    struct vigil_fim_name_key *nk = &s->end[0];
    __builtin_memset(nk, 0, sizeof(*nk));
    nk->dir = dir;
    bpf_probe_read_kernel_str(nk->name, VIGIL_FIM_NAME_MAX, BPF_CORE_READ(dentry, d_name.name));
    bool created = BPF_CORE_READ(file, f_mode) & FMODE_CREATED;
    struct vigil_fim_name *nm = bpf_map_lookup_elem(&fim_names, nk);
    if (nm) {
        m.id = nm->watch.id;
        m.how = VIGIL_FIM_BY_NAME;
        if (nm->file.ino != k.ino || nm->file.dev != k.dev) {
            rekey(nm, &k);
            m.how |= VIGIL_FIM_REKEYED;
            m.new_file = k;
        } else if (!(flags & O_TRUNC)) {
            drop();
            return 0;
        }
    } else if (created) {
        bpf_map_update_elem(&fim_created, nk, &k, BPF_ANY);
        if (!(pw->flags & VIGIL_FIM_DIR)) {
            drop();
            return 0;
        }
        struct vigil_fim_watch nw = { .id = pw->id, .flags = VIGIL_FIM_FILE };
        bpf_map_update_elem(&fim_inodes, &k, &nw, BPF_ANY);
        m.file = dir;
        m.id = pw->id;
        m.how = VIGIL_FIM_IN_DIR | VIGIL_FIM_REKEYED;
        m.new_file = k;
    } else {
        drop();
        return 0;
    }
    if (created)
        m.how |= VIGIL_FIM_CREATED;
report:;
    struct fim_scratch *rs = fim_buf();
    if (!rs)
        return 0;
    __u64 args[VIGIL_SYSCALL_ARGS];
    vigil_syscall_args(args, vigil_user_regs());
    begin(rs, x, args);
    __u32 len = 0;
    capture_path(rs, p, &len);
    return emit(rs, &m);
}

SEC("?tracepoint/syscalls/sys_exit_openat")
int openat_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *r = vigil_user_regs();
    struct exit_ctx x = EXIT_CTX(ctx);
    return on_open(&x, 1, VIGIL_SYSCALL_ARG2(r));
}

SEC("?tracepoint/syscalls/sys_exit_open")
int open_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *r = vigil_user_regs();
    struct exit_ctx x = EXIT_CTX(ctx);
    return on_open(&x, 0, VIGIL_SYSCALL_ARG1(r));
}

SEC("?tracepoint/syscalls/sys_exit_creat")
int creat_exit(struct syscall_trace_exit *ctx)
{
    struct exit_ctx x = EXIT_CTX(ctx);
    return on_open(&x, 0, O_CREAT | O_TRUNC);
}

SEC("?tracepoint/syscalls/sys_exit_openat2")
int openat2_exit(struct syscall_trace_exit *ctx)
{
    struct pt_regs *r = vigil_user_regs();
    struct open_how how = {};
    bpf_probe_read_user(&how, sizeof(how), (void *)VIGIL_SYSCALL_ARG2(r));
    struct exit_ctx x = EXIT_CTX(ctx);
    return on_open(&x, 1, how.flags);
}
