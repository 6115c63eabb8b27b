#include "clibbpf.h"
#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static clibbpf_log_fn log_fn;
static void *log_context;

static int forward_print(enum libbpf_print_level level, const char *format, va_list args)
{
    char line[1024];
    vsnprintf(line, sizeof(line), format, args);
    if (log_fn)
        log_fn(log_context, (int)level, line);
    return 0;
}

void clibbpf_install_log(clibbpf_log_fn fn, void *context)
{
    /* libbpf's print hook is process-wide by design; the context travels with it. */
    log_context = context;
    log_fn = fn;
    libbpf_set_print(fn ? forward_print : NULL);
}

int clibbpf_errno(void)
{
    return errno;
}

int clibbpf_probe_load(enum bpf_prog_type type, enum bpf_attach_type expected_attach,
                       uint32_t attach_btf_id, const struct bpf_insn *insns, size_t insn_count,
                       char *log, size_t log_size)
{
    LIBBPF_OPTS(bpf_prog_load_opts, opts,
        .expected_attach_type = expected_attach,
        .attach_btf_id = attach_btf_id,
        .log_buf = log,
        .log_size = (unsigned int)log_size,
        .log_level = log ? 1 : 0,
    );
    int fd = bpf_prog_load(type, NULL, "GPL", insns, insn_count, &opts);
    return fd < 0 ? -errno : fd;
}

int clibbpf_synchronize_rcu(void)
{
    /* MEMBARRIER_CMD_GLOBAL (1): "all threads ... passed through a state where all memory
     * accesses ... are ordered", implemented with synchronize_rcu(). */
    long rc = syscall(SYS_membarrier, 1, 0, 0);
    return rc < 0 ? -errno : 0;
}

int clibbpf_tracepoint_event_open(uint64_t id)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof(attr);
    attr.config = id;
    attr.disabled = 1;
    long fd = syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    return fd < 0 ? -errno : (int)fd;
}
