#!/usr/bin/env python3
"""Bootstraps bpf/syscalls/syscalls.table, the one table of every syscall (issue 12, part 1).

Run once (and again only to pick up syscalls a newer kernel added); the table is then edited by
hand. What it reads:
  - names, argument names and C types: /sys/kernel/tracing/events/syscalls/sys_enter_*/format
  - x86_64 numbers: /usr/include/x86_64-linux-gnu/asm/unistd_64.h
  - arm64 numbers: /usr/include/asm-generic/unistd.h preprocessed as arm64 does
    (arch/arm64/include/uapi/asm/unistd.h defines the __ARCH_WANT_* below)
and it annotates semantic types, categories and flags by the rules below.

Usage: scripts/syscalls-bootstrap.py [--merge] > bpf/syscalls/syscalls.table
  --merge keeps every row already in the table (hand edits win) and adds only new syscalls.
"""
import os
import re
import subprocess
import sys

TRACEFS = "/sys/kernel/tracing/events/syscalls"
X86 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
GENERIC = "/usr/include/asm-generic/unistd.h"
ARM64_WANTS = ["__ARCH_WANT_RENAMEAT", "__ARCH_WANT_NEW_STAT", "__ARCH_WANT_SET_GET_RLIMIT",
               "__ARCH_WANT_TIME32_SYSCALLS", "__ARCH_WANT_SYS_CLONE3", "__ARCH_WANT_MEMFD_SECRET"]
TABLE = os.path.join(os.path.dirname(__file__), "..", "bpf", "syscalls", "syscalls.table")


# Syscalls newer than this machine's headers (Debian 12's are Linux 6.1's): numbers from the
# kernel's arch/x86/entry/syscalls/syscall_64.tbl and scripts/syscall.tbl (the same on both
# since 424, except the x86-only uprobe/uretprobe). SyscallTableTests checks the rest.
NEWER = {"cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453, "futex_wake": 454, "futex_wait": 455,
         "futex_requeue": 456, "statmount": 457, "listmount": 458, "lsm_get_self_attr": 459,
         "lsm_set_self_attr": 460, "lsm_list_modules": 461, "mseal": 462, "setxattrat": 463, "getxattrat": 464,
         "listxattrat": 465, "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468, "file_setattr": 469}
NEWER_X86_ONLY = {"uretprobe": 335, "uprobe": 336}


def x86_numbers():
    nums = {}
    for line in open(X86):
        m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
        if m:
            nums[m.group(1)] = int(m.group(2))
    return nums


def arm64_numbers():
    args = ["cpp", "-dM", "-D__BITS_PER_LONG=64"] + ["-D" + w for w in ARM64_WANTS] + [GENERIC]
    macros = {}
    for line in subprocess.run(args, check=True, capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"#define (__NR\w+) (.+)", line)
        if m:
            macros[m.group(1)] = m.group(2).strip()

    def value(name, depth=0):
        v = macros.get(name)
        if v is None or depth > 8:
            return None
        if re.fullmatch(r"\d+", v):
            return int(v)
        m = re.fullmatch(r"\(?(__NR\w+)\s*\+\s*(\d+)\)?", v)
        if m:
            base = value(m.group(1), depth + 1)
            return None if base is None else base + int(m.group(2))
        return value(v, depth + 1)

    nums = {}
    for name in macros:
        if name.startswith("__NR_") and name not in ("__NR_syscalls", "__NR_arch_specific_syscall"):
            v = value(name)
            if v is not None:
                nums[name[5:]] = v
    return nums


def tracefs_events():
    events = {}
    for entry in sorted(os.listdir(TRACEFS)):
        if not entry.startswith("sys_enter_"):
            continue
        args = []
        for line in open(os.path.join(TRACEFS, entry, "format")):
            m = re.match(r"\s*field:(.*?);\s*offset:(\d+);", line)
            if m and int(m.group(2)) >= 16:
                decl = m.group(1).strip()
                name = re.split(r"[\s\*]+", decl)[-1]
                ctype = decl[: len(decl) - len(name)].strip()
                args.append((name, ctype))
        events[entry[len("sys_enter_"):]] = args
    return events


# Linux name -> tracefs event name, where they differ.
TRACE_ALIASES = {"stat": "newstat", "lstat": "newlstat", "fstat": "newfstat", "uname": "newuname",
                 "umount2": "umount", "sendfile": "sendfile64"}

CATEGORIES = [
    ("net", r"socket|socketpair|bind|listen|accept4?|connect|getsockname|getpeername|sendto|recvfrom|sendmsg|recvmsg|"
            r"sendmmsg|recvmmsg|shutdown|setsockopt|getsockopt|sethostname|setdomainname"),
    ("proc", r"clone3?|fork|vfork|execve|execveat|exit|exit_group|wait4|waitid|kill|tkill|tgkill|ptrace|prctl|arch_prctl|"
             r"set_tid_address|getpid|getppid|gettid|setsid|getsid|setpgid|getpgid|getpgrp|unshare|setns|seccomp|"
             r"sched_\w+|getpriority|setpriority|prlimit64|getrlimit|setrlimit|getrusage|personality|capget|capset|"
             r"pidfd_open|pidfd_getfd|pidfd_send_signal|process_vm_readv|process_vm_writev|chroot|pivot_root|"
             r"set_robust_list|get_robust_list|rseq|kcmp|uselib|process_madvise|process_mrelease|futex\w*|"
             r"getcpu|times|vhangup"),
    ("mem", r"mmap|munmap|mprotect|mremap|madvise|msync|mincore|mlock2?|munlock|mlockall|munlockall|brk|"
            r"remap_file_pages|mbind|set_mempolicy\w*|get_mempolicy|migrate_pages|move_pages|memfd_secret|"
            r"pkey_\w+|map_shadow_stack|cachestat|mseal|userfaultfd"),
    ("signal", r"rt_\w+|sigaltstack|signalfd4?|pause"),
    ("ipc", r"pipe2?|msg\w+|sem\w+|shm\w+|mq_\w+|eventfd2?|epoll_\w+|poll|ppoll|select|pselect6|io_\w+|"
            r"inotify_\w+|fanotify_\w+|timerfd_\w+|membarrier"),
    ("time", r"\w*time\w*|clock_\w+|adjtimex|nanosleep|alarm|getitimer|setitimer"),
    ("user", r"set\w*uid|get\w*uid|set\w*gid|get\w*gid|setgroups|getgroups|setfsuid|setfsgid|keyctl|add_key|request_key"),
    ("system", r"reboot|init_module|finit_module|delete_module|kexec_\w+|bpf|perf_event_open|syslog|sysinfo|"
               r"_sysctl|swapon|swapoff|acct|quotactl\w*|iopl|ioperm|uname|lookup_dcookie|nfsservctl|"
               r"mount\w*|umount2|fsopen|fsconfig|fsmount|fspick|open_tree\w*|move_mount|getrandom|"
               r"landlock_\w+|lsm_\w+|modify_ldt|vserver|afs_syscall|tuxcall|security|getpmsg|putpmsg|"
               r"query_module|get_kernel_syms|create_module|ustat|sync|syncfs|restart_syscall|ioprio_\w+|"
               r"get_mempolicy|kexec_load"),
]
SLEEP = {"nanosleep", "clock_nanosleep", "pause", "select", "pselect6", "poll", "ppoll", "epoll_wait",
         "epoll_pwait", "epoll_pwait2", "wait4", "waitid", "futex", "rt_sigsuspend", "rt_sigtimedwait", "accept",
         "accept4", "recvfrom", "recvmsg", "read", "msgrcv", "semop", "semtimedop", "io_getevents", "io_pgetevents"}

FD_CREATE = {"open", "openat", "openat2", "creat", "socket", "socketpair", "accept", "accept4", "dup", "dup2", "dup3",
             "pipe", "pipe2", "eventfd", "eventfd2", "memfd_create", "memfd_secret", "epoll_create", "epoll_create1",
             "inotify_init", "inotify_init1", "signalfd", "signalfd4", "timerfd_create", "fanotify_init",
             "userfaultfd", "perf_event_open", "bpf", "open_by_handle_at", "pidfd_open", "pidfd_getfd",
             "io_uring_setup", "fsopen", "fsmount", "fspick", "open_tree", "open_tree_attr", "fcntl"}
FD_CLOSE = {"close", "close_range"}
READS = {"read", "pread64", "readv", "preadv", "preadv2", "recvfrom", "recvmsg", "recvmmsg", "msgrcv", "mq_timedreceive",
         "readlink", "readlinkat", "getdents", "getdents64", "process_vm_readv", "splice", "tee", "sendfile",
         "copy_file_range", "vmsplice"}
WRITES = {"write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg", "sendmmsg", "msgsnd",
          "mq_timedsend", "process_vm_writev", "splice", "tee", "sendfile", "copy_file_range", "vmsplice"}
STATE = FD_CREATE | FD_CLOSE | {"execve", "execveat", "clone", "clone3", "fork", "vfork", "exit", "exit_group",
                                "chdir", "fchdir", "chroot", "setuid", "setgid", "setreuid", "setregid", "setresuid",
                                "setresgid", "setfsuid", "setfsgid", "setns", "unshare", "prctl", "capset"}
NORETURN = {"exit", "exit_group", "rt_sigreturn"}

PATH_NAMES = {"filename", "pathname", "path", "oldname", "newname", "oldpath", "newpath", "specialfile", "library",
              "dir_name", "pathname1", "new_root", "put_old", "dev_name", "dir", "special", "from_pathname",
              "to_pathname", "uname"}
DIRFD_NAMES = {"dfd", "dirfd", "olddfd", "newdfd", "from_dfd", "to_dfd"}
FD_NAMES = {"fd", "fd_in", "fd_out", "oldfd", "newfd", "epfd", "ufd", "out_fd", "in_fd", "fildes", "mqdes", "pidfd",
            "group_fd", "fs_fd", "ns_fd", "dfd", "dirfd", "olddfd", "newdfd", "from_dfd", "to_dfd", "fdin", "fdout"}
RESULT_FD = FD_CREATE - {"socketpair", "pipe", "pipe2", "fcntl"}
RESULT_PID = {"clone", "clone3", "fork", "vfork", "getpid", "getppid", "gettid", "wait4", "waitid", "setsid",
              "getsid", "getpgid", "getpgrp"}
RESULT_HEX = {"mmap", "mremap", "brk", "shmat"}

FLAG_SETS = {
    ("open", "flags"): "flags(open)", ("openat", "flags"): "flags(open)", ("creat", "mode"): "mode",
    ("mmap", "prot"): "flags(prot)", ("mmap", "flags"): "flags(mmap)", ("mprotect", "prot"): "flags(prot)",
    ("pkey_mprotect", "prot"): "flags(prot)", ("clone", "clone_flags"): "flags(clone)",
    ("unshare", "unshare_flags"): "flags(clone)", ("setns", "flag"): "flags(clone)", ("setns", "nstype"): "flags(clone)",
    ("socket", "family"): "enum(af)", ("socket", "type"): "enum(sock)", ("socketpair", "family"): "enum(af)",
    ("socketpair", "type"): "enum(sock)", ("access", "mode"): "flags(access)", ("faccessat", "mode"): "flags(access)",
    ("faccessat2", "mode"): "flags(access)", ("accept4", "flags"): "flags(sockflags)", ("pipe2", "flags"): "flags(open)",
    ("dup3", "flags"): "flags(open)", ("memfd_create", "flags"): "flags(memfd)", ("fcntl", "cmd"): "enum(fcntl)",
    ("ptrace", "request"): "enum(ptrace)", ("prctl", "option"): "enum(prctl)", ("lseek", "whence"): "enum(whence)",
    ("unlinkat", "flag"): "flags(at)", ("fchmodat", "mode"): "mode", ("linkat", "flags"): "flags(at)",
    ("fchownat", "flag"): "flags(at)", ("newfstatat", "flag"): "flags(at)", ("statx", "flags"): "flags(at)",
    ("renameat2", "flags"): "flags(rename)", ("eventfd2", "flags"): "flags(open)", ("epoll_create1", "flags"): "flags(open)",
    ("inotify_init1", "flags"): "flags(open)", ("signalfd4", "flags"): "flags(open)",
    ("timerfd_create", "flags"): "flags(open)", ("wait4", "options"): "flags(wait)", ("waitid", "options"): "flags(wait)",
    ("madvise", "behavior"): "enum(madvise)", ("clock_nanosleep", "which_clock"): "enum(clock)",
    ("clock_gettime", "which_clock"): "enum(clock)", ("flock", "cmd"): "flags(flock)", ("shutdown", "how"): "enum(shut)",
    ("mount", "flags"): "flags(mount)", ("umount", "flags"): "flags(umount)", ("umount2", "flags"): "flags(umount)",
    ("mknodat", "mode"): "mode", ("mknod", "mode"): "mode", ("init_module", "uargs"): "string",
    ("finit_module", "uargs"): "string", ("delete_module", "name_user"): "string", ("sethostname", "name"): "buffer(len)",
    ("memfd_create", "uname"): "string", ("bpf", "cmd"): "enum(bpf)", ("ioctl", "arg"): "hex", ("openat2", "usize"): "uint",
}


def semantic(syscall, name, ctype, args):
    """The table type of one argument from its name and C type (rules; hand edits refine)."""
    names = [a[0] for a in args]
    pointer = "*" in ctype
    key = (syscall, name)
    if key in FLAG_SETS:
        return FLAG_SETS[key]
    dirfd = next((d for d in ("olddfd", "dfd", "dirfd", "from_dfd") if d in names), None)
    if name in ("newname", "newpath", "to_pathname") and "newdfd" in names:
        dirfd = "newdfd"
    if name in ("to_pathname",) and "to_dfd" in names:
        dirfd = "to_dfd"
    if pointer and "char" in ctype and "*const" not in ctype.replace(" ", "") and name in PATH_NAMES:
        return f"path({dirfd})" if dirfd else "path"
    if "struct sockaddr" in ctype:
        lens = sorted((n for n in names if "len" in n and n != name), key=lambda n: "addr" not in n)
        if not lens:
            return "hex"
        length = lens[0]
        ltype = dict(args)[length]
        if "*" in ltype:
            return f"sockaddr(*{length}):out"
        return f"sockaddr({length})"
    if ctype.startswith("const char") and pointer and "*const" not in ctype.replace(" ", "") and name not in ("buf", "ubuf", "buff"):
        return "string"
    if name in ("buf", "ubuf", "buff") and pointer:
        count = next((n for n in names if n in ("count", "len", "size", "bufsiz", "nbytes")), None)
        if ctype.startswith("const") or syscall in ("write", "pwrite64", "sendto", "sendmsg"):
            return f"buffer({count})" if count else "hex"
        return "buffer(ret):out" if count else "hex"
    if syscall in ("pipe", "pipe2", "socketpair") and name in ("fildes", "usockvec"):
        return "fdpair:out"
    if "timespec" in ctype and ctype.startswith("const") or (syscall == "nanosleep" and name == "rqtp"):
        return "timespec"
    if pointer:
        return "hex"
    if name in FD_NAMES:
        return "fd"
    if ctype.endswith("pid_t") or name in ("pid", "tgid", "tid", "upid"):
        return "pid"
    if ctype.endswith("uid_t"):
        return "uid"
    if ctype.endswith("gid_t"):
        return "gid"
    if ctype == "umode_t" or (name == "mode" and syscall in ("chmod", "fchmod", "fchmodat", "fchmodat2", "mkdir",
                                                             "mkdirat", "open", "openat", "mknod", "mknodat", "creat")):
        return "mode"
    if name in ("sig", "signal") or (syscall in ("kill", "tkill", "tgkill") and name == "sig"):
        return "signal"
    if ctype.startswith("unsigned") or ctype in ("size_t", "u32", "u64", "__u32", "__u64", "key_serial_t", "aio_context_t"):
        return "uint"
    return "int"


def categories(name, params):
    cats = []
    for cat, pattern in CATEGORIES:
        if re.fullmatch(pattern, name):
            cats.append(cat)
            break
    if not cats:
        cats.append("fs" if any(p.split(":")[1].startswith(("path", "fd")) for p in params) or
                    re.search(r"stat|xattr|dir|link|chmod|chown|trunc|sync|open|read|write|seek|fcntl|ioctl|flock|"
                              r"getcwd|splice|sendfile|fallocate|fadvise|quotactl|name_to_handle|access|utime|rename",
                              name) else "other")
    if name in SLEEP:
        cats.append("sleep")
    return cats


def flags(name, params):
    out = []
    if name in FD_CREATE:
        out.append("fd_create")
    if name in FD_CLOSE:
        out.append("fd_close")
    if any(p.split(":")[1] == "fd" for p in params):
        out.append("uses_fd")
    if name in READS:
        out.append("reads")
    if name in WRITES:
        out.append("writes")
    if name in STATE:
        out.append("state")
    if name in NORETURN:
        out.append("noreturn")
    return out


def result(name):
    if name in RESULT_FD:
        return "fd"
    if name in RESULT_PID:
        return "pid"
    if name in RESULT_HEX:
        return "hex"
    return "int"


def existing_rows():
    rows = {}
    if os.path.exists(TABLE):
        for line in open(TABLE):
            if line.strip() and not line.startswith("#"):
                rows[line.split()[0]] = line.rstrip("\n")
    return rows


def main():
    merge = "--merge" in sys.argv
    x86, arm = x86_numbers(), arm64_numbers()
    for name, nr in NEWER.items():
        x86.setdefault(name, nr)
        arm.setdefault(name, nr)
    for name, nr in NEWER_X86_ONLY.items():
        x86.setdefault(name, nr)
    events = tracefs_events()
    keep = existing_rows() if merge else {}
    names = sorted(set(x86) | set(arm), key=lambda n: (x86.get(n, 1000 + arm.get(n, 0)), n))
    print(HEADER)
    for name in names:
        if name in keep:
            print(keep[name])
            continue
        event = TRACE_ALIASES.get(name, name)
        args = events.get(event)
        if args is None:
            event = "-"
            args = []
        params = [f"{a}:{semantic(name, a, t, args)}" for a, t in args]
        row = [name, str(x86.get(name, "-")), str(arm.get(name, "-")), event, ",".join(categories(name, params)),
               ",".join(flags(name, params)) or "-", result(name)]
        print(f"{row[0]:<24}{row[1]:<7}{row[2]:<6}{row[3]:<23} {row[4]:<12} {row[5]:<27} {row[6]:<4} " +
              (" ".join(params) if params else "-"))


HEADER = """\
# The one table of every syscall of x86_64 and arm64 (issue 12). Edit by hand; 'make generate'
# turns it into Sources/VigilEvents/Generated/Syscalls.swift and docs/syscalls.md. Bootstrapped by
# scripts/syscalls-bootstrap.py (from this kernel's tracefs formats, unistd_64.h and asm-generic's
# unistd.h as arm64 uses it); '--merge' adds new syscalls and keeps every row here.
# SyscallTableTests checks names and argument names against the running kernel's tracefs formats
# and the numbers against the headers.
#
# One row per syscall, columns separated by spaces:
#   name        as Linux (and Falco's evt.type) names it
#   x86_64      number on x86_64, '-' when the arch lacks it
#   arm64       number on arm64 (asm-generic), '-' when the arch lacks it
#   tracefs     the tracefs event (sys_enter_NAME) whose arguments these are, '-' when this kernel has none
#   categories  comma separated: fs net proc ipc mem signal time user system sleep other
#   flags       comma separated, '-' for none: fd_create fd_close uses_fd reads writes
#               state (changes the fd or process tables: never dropped) noreturn (no exit event)
#   result      type of the return value: int (or -errno), fd, pid, hex
#   params      in order, NAME:TYPE or NAME:TYPE:out (read at exit; entry otherwise), '-' for none;
#               NAME|FALCO_NAME when Falco's rules name the parameter otherwise (evt.arg.FALCO_NAME)
#
# Types: int uint hex fd pid uid gid mode signal timespec string
#   path | path(DIRFD)       a file system path, resolved against cwd or the fd argument DIRFD
#   buffer(LEN) | buffer(ret) bytes, as many as argument LEN says (or the return value), bounded
#   sockaddr(LEN) | sockaddr(*LEN)  a socket address of LEN bytes (or *LEN, a pointer, read at exit)
#   flags(SET) | enum(SET)   named bits / values: open prot mmap clone access at rename memfd sockflags
#                            wait flock mount umount | af sock fcntl ptrace prctl whence madvise clock shut bpf
#   fdpair                   two ints written by the kernel (pipe, socketpair)
#
# name                  x86_64 arm64 tracefs                 categories  flags                       result params"""

if __name__ == "__main__":
    main()
