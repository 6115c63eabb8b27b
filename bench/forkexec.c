/* bench/forkexec.c: the fork+exec loop of scripts/bench-sensors.sh.
 *
 *   forkexec PROGRAM ITERATIONS [SLICES]
 *
 * Each iteration forks; the child execs PROGRAM with no arguments (the script passes a symlink
 * to /bin/true with a name unique to the run, so a tracer's output can be searched for it; the
 * kernel runs /bin/true); the parent waits for it. The child inherits the parent's CPU pinning. */
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
    if (argc < 3) {
        fprintf(stderr, "usage: %s PROGRAM ITERATIONS [SLICES]\n", argv[0]);
        return 2;
    }
    program = argv[1];
    long n = atol(argv[2]);
    int slices = argc > 3 ? atoi(argv[3]) : 10;
    run_loop(step, n / 20, n, slices);
    return 0;
}
