/* bench/forkexec.c: the fork+exec loop of scripts/bench-sensors.sh.
 *
 *   forkexec PROGRAM ITERATIONS [SLICES [WARMUP_MS]]
 *
 * Each step forks; the child execs PROGRAM without arguments and the parent waits for it. The
 * script passes a symlink to /bin/true with a name unique to the run (the kernel runs /bin/true;
 * the name becomes the child's comm), so a tracer's output can be searched for it. The child
 * inherits the parent's CPU pinning. */
#include <sys/wait.h>
#include <unistd.h>
#include "loop.h"

static const char *program;

static void step(void)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        execl(program, program, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "forkexec: %s did not exit 0\n", program);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    long iterations;
    int slices;
    double warmup_ms;
    parse_args(argc, argv, &iterations, &slices, &warmup_ms);
    program = argv[1];
    run_loop(step, warmup_ms, iterations, slices);
    return 0;
}
