/*
 * The host kernel's side of `offmm fork`: fork() of a process holding MIB MiB of written
 * anonymous memory, then the first write to each page in the parent while the child is alive
 * (the COW storm). Prints one line per repetition: "fork_us <us> cow_faults_per_s <n>".
 * A separate process, not fork() inside the JVM: a JVM child must not run Java code, and the
 * JVM's own mappings would be copied too.
 *
 * usage: kernel_fork MIB REPEAT
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: kernel_fork MIB REPEAT\n");
        return 2;
    }
    long mib = atol(argv[1]);
    int repeat = atoi(argv[2]);
    size_t len = (size_t) mib << 20;
    long page = sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(p, len, MADV_NOHUGEPAGE);
    for (size_t o = 0; o < len; o += page) {
        p[o] = 1;
    }
    for (int r = 0; r < repeat; r++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("pipe");
            return 1;
        }
        double t0 = now_us();
        pid_t pid = fork();
        if (pid == 0) {
            char c;
            close(fds[1]);
            /* Stays alive, mapping every page, until the parent's storm is over. */
            while (read(fds[0], &c, 1) > 0) {
            }
            _exit(0);
        }
        double forked = now_us() - t0;
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        close(fds[0]);
        double t1 = now_us();
        for (size_t o = 0; o < len; o += page) {
            p[o] = (char) (r + 2);
        }
        double storm = now_us() - t1;
        close(fds[1]);
        waitpid(pid, NULL, 0);
        printf("fork_us %.1f cow_faults_per_s %.0f\n", forked, (len / page) / (storm / 1e6));
        fflush(stdout);
    }
    return 0;
}
