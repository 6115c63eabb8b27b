/* libbpf for Swift: the system headers (Debian's libbpf-dev) plus the few shims Swift cannot
 * express directly (va_list printing, acquire/release atomics on the ring's shared pages). */
#ifndef CLIBBPF_H
#define CLIBBPF_H

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>

/** Receives one formatted libbpf log line; `context` is what was given to the install call. */
typedef void (*clibbpf_log_fn)(void *context, int level, const char *message);

/** Route libbpf's print callback (libbpf_set_print) to `fn`; NULL restores stderr printing. */
void clibbpf_install_log(clibbpf_log_fn fn, void *context);

/** Load with acquire ordering (ring-buffer producer position). */
static inline uint64_t clibbpf_load_acquire(const volatile uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/** Load with acquire ordering of a record header word. */
static inline uint32_t clibbpf_load_acquire32(const volatile uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/** Store with release ordering (ring-buffer consumer position). */
static inline void clibbpf_store_release(volatile uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/** The last error number of libbpf (errno after a NULL-returning call). */
int clibbpf_errno(void);

/** Load a program of `type` from raw instructions (a feature probe); returns fd or -errno. */
int clibbpf_probe_load(enum bpf_prog_type type, enum bpf_attach_type expected_attach,
                       uint32_t attach_btf_id, const struct bpf_insn *insns, size_t insn_count,
                       char *log, size_t log_size);

/** Waits for an RCU grace period (membarrier(MEMBARRIER_CMD_GLOBAL), which calls
 * synchronize_rcu): every BPF program running when called has returned. 0 or -errno. */
int clibbpf_synchronize_rcu(void);

/** Opens a disabled perf event, with no program, on the tracepoint of tracefs id `id` (any task,
 * CPU 0, close-on-exec): it keeps the tracepoint registered. Returns the fd or -errno. */
int clibbpf_tracepoint_event_open(uint64_t id);

#endif
