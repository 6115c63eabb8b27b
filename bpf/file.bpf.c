// SPDX-License-Identifier: GPL-2.0
/* file sensor: open, openat and openat2, reported when they return, with the name as given, the
 * directory a relative name is relative to (cwd or dirfd, as an absolute path), flags, mode and
 * the result (fd or -errno).
 *
 * Variants (VigilSensors/FileSensor.swift): fexit on do_sys_openat2 (one hook sees arguments and
 * result; kernels with BPF trampolines), else the specific syscall tracepoints
 * syscalls/sys_{enter,exit}_{open,openat,openat2}: never the generic sys_enter hook, which would
 * tax every syscall on the host. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_open_event);

#define AT_FDCWD -100

/* Arguments saved at syscall entry, read at exit. */
struct open_args {
    const char *filename;
    __s32 dirfd;
    __u32 syscall;
    __u32 flags;
    __u32 mode;
};

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64); /* pid_tgid */
    __type(value, struct open_args);
} pending SEC(".maps");

/* The struct path of the directory a relative name starts from, or false when dirfd names none. */
static __always_inline bool base_path(__s32 dirfd, struct path *out)
{
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    if (dirfd == AT_FDCWD) {
        *out = BPF_CORE_READ(task, fs, pwd);
        return true;
    }
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    unsigned int max = BPF_CORE_READ(fdt, max_fds);
    if (dirfd < 0 || (unsigned int)dirfd >= max)
        return false;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = NULL;
    bpf_probe_read_kernel(&file, sizeof(file), &fds[dirfd]);
    if (!file)
        return false;
    *out = BPF_CORE_READ(file, f_path);
    return true;
}

static __always_inline int emit_open(const struct open_args *args, long result)
{
    struct vigil_scratch *s = vigil_scratch();
    struct vigil_open_event *e;
    __u32 len;
    long n;

    if (!s)
        return 0;
    e = (struct vigil_open_event *)s->event;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_OPEN, 0);
    e->result = result;
    e->flags_arg = args->flags;
    e->mode = args->mode;
    e->dirfd = args->dirfd;
    e->syscall = args->syscall;
    e->flags = 0;
    e->base_len = 0;

    n = bpf_probe_read_user_str(e->data, VIGIL_FILENAME_MAX, args->filename);
    len = n > 0 ? n - 1 : 0;
    if (len == VIGIL_FILENAME_MAX - 1)
        e->flags |= VIGIL_OPEN_NAME_TRUNCATED;
    e->name_len = len;

    if (len == 0 || e->data[0] != '/') {
        struct path base;
        if (base_path(args->dirfd, &base)) {
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
    e->hdr.size = size;
    vigil_output(e, size & (VIGIL_EVENT_SCRATCH - 1));
    return 0;
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
    if (vigil_filtered())
        return 0;
    return emit_open(&args, ret);
}

/* --- variant: syscall tracepoints, entry saves the arguments, exit emits --- */

static __always_inline int save(const char *filename, __s32 dirfd, __u32 syscall, __u32 flags, __u32 mode)
{
    if (vigil_filtered())
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    struct open_args args = { .filename = filename, .dirfd = dirfd, .syscall = syscall, .flags = flags, .mode = mode };
    bpf_map_update_elem(&pending, &id, &args, BPF_ANY);
    return 0;
}

static __always_inline int finish(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct open_args *args = bpf_map_lookup_elem(&pending, &id);
    if (!args)
        return 0;
    emit_open(args, ret);
    bpf_map_delete_elem(&pending, &id);
    return 0;
}

SEC("?tracepoint/syscalls/sys_enter_openat")
int openat_enter(struct syscall_trace_enter *ctx)
{
    return save((const char *)ctx->args[1], (__s32)ctx->args[0], VIGIL_OPEN_OPENAT, ctx->args[2], ctx->args[3]);
}

SEC("?tracepoint/syscalls/sys_exit_openat")
int openat_exit(struct syscall_trace_exit *ctx)
{
    return finish(ctx->ret);
}

SEC("?tracepoint/syscalls/sys_enter_open")
int open_enter(struct syscall_trace_enter *ctx)
{
    return save((const char *)ctx->args[0], AT_FDCWD, VIGIL_OPEN_OPEN, ctx->args[1], ctx->args[2]);
}

SEC("?tracepoint/syscalls/sys_exit_open")
int open_exit(struct syscall_trace_exit *ctx)
{
    return finish(ctx->ret);
}

SEC("?tracepoint/syscalls/sys_enter_openat2")
int openat2_enter(struct syscall_trace_enter *ctx)
{
    struct open_how how = {};
    bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
    return save((const char *)ctx->args[1], (__s32)ctx->args[0], VIGIL_OPEN_OPENAT2, how.flags, how.mode);
}

SEC("?tracepoint/syscalls/sys_exit_openat2")
int openat2_exit(struct syscall_trace_exit *ctx)
{
    return finish(ctx->ret);
}
