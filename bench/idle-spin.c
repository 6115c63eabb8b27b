/* bench/idle-spin.c: keeps a CPU out of its idle state while scripts/bench-sensors.sh runs.
 *
 * Started as SCHED_IDLE (chrt -i 0) and pinned to the loop's CPU, it runs only when nothing else
 * wants that CPU, and any waking task preempts it at once. Without it, this VM's vCPU runs
 * syscall-heavy code ~1.65x slower for 100-250 ms after each idle period (the host's doing: no
 * steal is reported), so that runs started after a pause were bimodal (~740 vs ~1240 ns per
 * open+close). With it that ramp is gone; the host's own slow phases remain (see the notes on
 * the sensors section in BENCHMARKS.md). */
int main(void)
{
    for (;;)
        __asm__ volatile("pause");
}
