/* A shell-like program linked with the shared libreadline (as some distributions link bash):
 * reads lines with readline() until EOF or "exit", echoing nothing. ShellSensorTests
 * (Tests/VigilSensorsTests) runs it as `bash` on a pty: its binary has no readline of its own,
 * so the shell sensor attaches to the libreadline it maps.
 * Usage: readline-shell */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <readline/readline.h>

int main(void)
{
    for (;;) {
        char *line = readline("$ ");
        if (!line)
            return 0;
        int done = strcmp(line, "exit") == 0;
        free(line);
        if (done)
            return 0;
    }
}
