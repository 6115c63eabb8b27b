// SPDX-License-Identifier: GPL-2.0
/* shell sensor: the lines interactive bash shells read (bpfd's and bcc's bashreadline).
 *
 * Hooks (VigilSensors/Sensor.swift `Sensor.shell`, attached per binary by `ShellBinaries`):
 *   - uprobe on readline: marks the calling thread as inside readline.
 *   - uretprobe on readline: the returned line (NULL at EOF: nothing), read with
 *     bpf_probe_read_user_str, cut at VIGIL_SHELL_LINE_MAX - 1 bytes (VIGIL_SHELL_TRUNCATED).
 * A uprobe lands on the file's real inode (an overlayfs file's lower or upper one), so two
 * containers of one image share it while userspace, which sees each overlay mount's own (dev,
 * inode), may attach to it twice: the return consumes the entry's mark, and only the first of the
 * probes firing for one return finds it. A non-interactive bash (`bash -c`, a script) never calls
 * readline. Goes through the shared filters (containers only, pids, uids, cgroups, comms). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "vigil.bpf.h"
#include "sensor.bpf.h"

char LICENSE[] SEC("license") = "GPL";

VIGIL_ABI_TYPE(vigil_shell_event);

/* Threads inside readline (entered after the probes were attached), by pid_tgid. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, __u8);
} shell_reading SEC(".maps");

SEC("?uprobe")
int BPF_KPROBE(readline_entry)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u8 one = 1;
    bpf_map_update_elem(&shell_reading, &id, &one, BPF_ANY);
    return 0;
}

SEC("?uretprobe")
int BPF_KRETPROBE(readline_return, const char *line)
{
    __u64 id = bpf_get_current_pid_tgid();
    /* Only the first probe of this return: another link on the same inode finds no mark. */
    if (bpf_map_delete_elem(&shell_reading, &id))
        return 0;
    if (!line || vigil_filtered())
        return 0;
    struct vigil_shell_event *e = vigil_reserve(sizeof(*e));
    if (!e)
        return 0;
    vigil_fill_header(&e->hdr, VIGIL_EVENT_SHELL, sizeof(*e));
    struct task_struct *task = bpf_get_current_task_btf();
    e->flags = 0;
    e->_pad = 0;
    e->sid = 0;
    vigil_fill_tty(task, e->tty, &e->tty_major, &e->tty_minor);
    int sid_type = bpf_core_enum_value(enum pid_type, PIDTYPE_SID);
    struct pid *session = BPF_CORE_READ(task, signal, pids[sid_type]);
    if (session)
        e->sid = BPF_CORE_READ(session, numbers[0].nr);
    long n = bpf_probe_read_user_str(e->line, sizeof(e->line), line);
    if (n <= 0) {
        e->line[0] = 0;
        n = 1;
    }
    e->line_len = (__u16)(n - 1);
    if (n == sizeof(e->line)) {
        char next = 0;
        if (bpf_probe_read_user(&next, 1, line + sizeof(e->line) - 1) == 0 && next)
            e->flags |= VIGIL_SHELL_TRUNCATED;
    }
    vigil_submit(e, sizeof(*e));
    return 0;
}
