/* What the process and file sensors share: in-kernel filters, per-CPU scratch space, and
 * building absolute paths from a struct path. Include after vigil.bpf.h. */
#ifndef VIGIL_SENSOR_BPF_H
#define VIGIL_SENSOR_BPF_H

#define VIGIL_EVENT_SCRATCH 16384

/* --- filters: settings in `filter`, sets in hash maps; all changeable at run time --- */

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vigil_filter_config);
} filter SEC(".maps");

struct vigil_comm { char name[VIGIL_COMM_LEN]; };

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct vigil_comm);
    __type(value, __u8);
} comm_include SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct vigil_comm);
    __type(value, __u8);
} comm_exclude SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u8);
} pids SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, __u32);
    __type(value, __u8);
} uids SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u64);
    __type(value, __u8);
} cgroups SEC(".maps");

/* Vigil's own process, set before load: its activity is never an event (and not counted). */
const volatile __u32 vigil_ignore_tgid = 0;

/* True for Vigil's own process; `task` is the current task as a BTF pointer (a load). */
static __always_inline bool vigil_task_is_self(struct task_struct *task)
{
    return vigil_ignore_tgid && task->tgid == vigil_ignore_tgid;
}

/* vigil_task_is_self for the current task. */
static __always_inline bool vigil_is_self(void)
{
    return vigil_ignore_tgid && bpf_get_current_task_btf()->tgid == vigil_ignore_tgid;
}

/* VIGIL_FILTER_PIDS_FOLLOW (`vigil trace --summary -- CMD`): a process forked by one the pids map
 * keeps, or by Vigil itself (the command it runs), is kept too, from before it first runs
 * (sched_process_fork fires before the child is woken). Threads are their process. A fork the
 * full map cannot take is counted (VIGIL_COUNTER_UNFOLLOWED). */
static __always_inline void vigil_follow_fork(struct task_struct *parent, struct task_struct *child)
{
    __u32 zero = 0;
    struct vigil_filter_config *cfg = bpf_map_lookup_elem(&filter, &zero);
    __u32 parent_tgid = BPF_CORE_READ(parent, tgid), child_tgid = BPF_CORE_READ(child, tgid);
    __u8 one = 1;

    if (!cfg || !(cfg->flags & VIGIL_FILTER_PIDS_FOLLOW) || child_tgid == parent_tgid)
        return;
    if (!(vigil_ignore_tgid && parent_tgid == vigil_ignore_tgid) && !bpf_map_lookup_elem(&pids, &parent_tgid))
        return;
    /* The map full: the child and its descendants are not followed (their events are filtered). */
    if (bpf_map_update_elem(&pids, &child_tgid, &one, BPF_ANY))
        vigil_count(VIGIL_COUNTER_UNFOLLOWED);
}

/* VIGIL_FILTER_PIDS_FOLLOW: a followed process leaves the pids map at its exit (the map stays the
 * live tree, and its tgid may be reused). */
static __always_inline void vigil_follow_exit(__u32 tgid)
{
    __u32 zero = 0;
    struct vigil_filter_config *cfg = bpf_map_lookup_elem(&filter, &zero);

    if (cfg && (cfg->flags & VIGIL_FILTER_PIDS_FOLLOW))
        bpf_map_delete_elem(&pids, &tgid);
}

/* VIGIL_FILTER_PIDS_FOLLOW: true (counted as filtered) for a task outside the followed tree.
 * Its state changes are dropped too: what is kept is the tree, whose ancestry is Vigil, and the
 * tree's fd table only needs the tree's own (a host flood of opens would fill the ring).
 * `task` is the current task as a BTF pointer (bpf_get_current_task_btf), read with a load. */
static __always_inline bool vigil_outside_followed_tree(struct task_struct *task)
{
    __u32 zero = 0;
    struct vigil_filter_config *cfg = bpf_map_lookup_elem(&filter, &zero);
    __u32 tgid = task->tgid;

    if (!cfg || !(cfg->flags & VIGIL_FILTER_PIDS_FOLLOW) || bpf_map_lookup_elem(&pids, &tgid))
        return false;
    vigil_count(VIGIL_COUNTER_FILTERED);
    return true;
}

/* True when `task`'s event is dropped by a filter (and counted as filtered); `task` is the
 * current task as a BTF pointer (bpf_get_current_task_btf), read with plain loads.
 * Never for state changes (exec, fork, exit): the process table needs every one of them, and
 * userspace applies the same filters to them after enrichment (VigilSensors' StateChangeFilter). */
static __always_inline bool vigil_task_filtered(struct task_struct *task)
{
    __u32 zero = 0;
    struct vigil_filter_config *cfg = bpf_map_lookup_elem(&filter, &zero);
    __u32 tgid = task->tgid;

    if (vigil_task_is_self(task))
        return true;
    if (!cfg || !cfg->flags)
        return false;
    if ((cfg->flags & VIGIL_FILTER_CONTAINERS_ONLY) && vigil_task_pid_ns(task) == cfg->host_pid_ns)
        goto drop;
    if ((cfg->flags & VIGIL_FILTER_PIDS) && !bpf_map_lookup_elem(&pids, &tgid))
        goto drop;
    if (cfg->flags & VIGIL_FILTER_UIDS) {
        __u32 uid = task->cred->uid.val;
        if (!bpf_map_lookup_elem(&uids, &uid))
            goto drop;
    }
    if (cfg->flags & VIGIL_FILTER_CGROUPS) {
        __u64 cgid = vigil_task_cgroup_id(task);
        if (!bpf_map_lookup_elem(&cgroups, &cgid))
            goto drop;
    }
    if (cfg->flags & (VIGIL_FILTER_COMM_INCLUDE | VIGIL_FILTER_COMM_EXCLUDE)) {
        struct vigil_comm comm;
        vigil_task_comm(task, comm.name);
        if ((cfg->flags & VIGIL_FILTER_COMM_INCLUDE) && !bpf_map_lookup_elem(&comm_include, &comm))
            goto drop;
        if ((cfg->flags & VIGIL_FILTER_COMM_EXCLUDE) && bpf_map_lookup_elem(&comm_exclude, &comm))
            goto drop;
    }
    return false;
drop:
    vigil_count(VIGIL_COUNTER_FILTERED);
    return true;
}

/* vigil_task_filtered for the current task. */
static __always_inline bool vigil_filtered(void)
{
    return vigil_task_filtered(bpf_get_current_task_btf());
}

/* --- per-CPU scratch: an event being built, and a path being built backwards --- */

struct vigil_scratch {
    char event[VIGIL_EVENT_SCRATCH];
    char path[VIGIL_PATH_MAX * 2];
};

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct vigil_scratch);
} scratch SEC(".maps");

static __always_inline struct vigil_scratch *vigil_scratch(void)
{
    __u32 zero = 0;
    return bpf_map_lookup_elem(&scratch, &zero);
}

/* The state of one path walk (vigil_build_path). */
struct vigil_path_walk {
    struct vigil_scratch *s;
    struct dentry *dentry;
    struct mount *mnt;
    struct dentry *root_dentry; /* the task's root (chroot): the walk stops there, as d_path does */
    struct mount *root_mnt;
    struct dentry *mnt_root;    /* the root of `mnt` (read when the walk enters a mount) */
    __u32 off;
    bool truncated;
    bool done;
};

/* bpf_loop body: one level of the walk, one name prepended or one mount crossed. (bpf_loop: the
 * verifier checks the body once instead of every level, which made it the bulk of load time.) */
static long vigil_path_step(__u32 i, void *data)
{
    struct vigil_path_walk *w = data;
    struct dentry *dentry = w->dentry;
    struct mount *mnt = w->mnt;

    if (dentry == w->root_dentry && mnt == w->root_mnt)
        goto done; /* the task's root directory */
    if (dentry == w->mnt_root) {
        struct mount *mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
        if (mnt == mnt_parent)
            goto done; /* the root of the namespace */
        w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
        w->mnt = mnt_parent;
        w->mnt_root = BPF_CORE_READ(mnt_parent, mnt.mnt_root);
        return 0;
    }
    /* The parent and the name (length and pointer) in one read where d_name follows d_parent
     * (every kernel so far; the offsets are CO-RE constants, the other branch is pruned). */
    struct { struct dentry *parent; struct qstr name; } pn;
    __u32 parent_off = bpf_core_field_offset(struct dentry, d_parent);
    if (bpf_core_field_offset(struct dentry, d_name) == parent_off + sizeof(void *)) {
        bpf_probe_read_kernel(&pn, sizeof(pn), (void *)dentry + parent_off);
    } else {
        pn.parent = BPF_CORE_READ(dentry, d_parent);
        BPF_CORE_READ_INTO(&pn.name, dentry, d_name);
    }
    struct dentry *parent = pn.parent;
    struct qstr name = pn.name;
    if (dentry == parent)
        goto done; /* the root of a detached tree */
    __u32 len = name.len & 255;
    __u32 off = w->off;
    if (len + 1 > off) {
        w->truncated = true;
        goto done;
    }
    off -= len + 1;
    off &= VIGIL_PATH_MAX - 1;
    w->s->path[off] = '/';
    bpf_probe_read_kernel(&w->s->path[off + 1], len, name.name);
    w->off = off;
    w->dentry = parent;
    return 0;
done:
    w->done = true;
    return 1;
}

/* Builds the absolute path of `path` as the current task sees it (below its root directory, so a
 * chroot'ed task sees its own paths; else up to the root of its mount namespace) in s->path,
 * walking dentries and crossing mounts, at most VIGIL_PATH_DEPTH levels. Returns the offset where the
 * path starts; it ends at VIGIL_PATH_MAX. Sets *truncated when the walk had to stop early. */
static __always_inline __u32 vigil_build_path(struct vigil_scratch *s, struct path *path, bool *truncated)
{
    struct vfsmount *vfsmnt = BPF_CORE_READ(path, mnt);
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct path root = BPF_CORE_READ(task, fs, root);
    struct vigil_path_walk w = {
        .s = s,
        .dentry = BPF_CORE_READ(path, dentry),
        .mnt = (struct mount *)((void *)vfsmnt - bpf_core_field_offset(struct mount, mnt)),
        .root_dentry = root.dentry,
        .root_mnt = (struct mount *)((void *)root.mnt - bpf_core_field_offset(struct mount, mnt)),
        .mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
        .off = VIGIL_PATH_MAX,
    };

    bpf_loop(VIGIL_PATH_DEPTH, vigil_path_step, &w, 0);
    if (w.truncated || !w.done)
        *truncated = true;
    __u32 off = w.off;
    if (off == VIGIL_PATH_MAX) {
        off = VIGIL_PATH_MAX - 1;
        s->path[off] = '/';
    }
    return off;
}

#define VIGIL_AT_FDCWD -100

/* The struct path of the directory a relative name starts from (dirfd, or the cwd for
 * AT_FDCWD), or false when dirfd names none. */
static __always_inline bool vigil_base_path(__s32 dirfd, struct path *out)
{
    if (dirfd == VIGIL_AT_FDCWD) {
        struct task_struct *task = (struct task_struct *)bpf_get_current_task();
        *out = BPF_CORE_READ(task, fs, pwd);
        return true;
    }
    struct file *file = vigil_fd_file(dirfd);
    if (!file)
        return false;
    *out = BPF_CORE_READ(file, f_path);
    return true;
}

/* Appends the path built at `off` to the event data at `pos`; returns the bytes written. */
static __always_inline __u32 vigil_append_path(struct vigil_scratch *s, char *data, __u32 pos, __u32 off)
{
    __u32 len = VIGIL_PATH_MAX - (off & (VIGIL_PATH_MAX - 1));
    if (len > VIGIL_PATH_MAX)
        len = VIGIL_PATH_MAX;
    bpf_probe_read_kernel(data + (pos & (VIGIL_PATH_MAX * 2 - 1)), len, &s->path[off & (VIGIL_PATH_MAX - 1)]);
    return len;
}

#endif /* VIGIL_SENSOR_BPF_H */
