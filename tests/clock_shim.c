/* An LD_PRELOAD shim that moves only the wall clock (CLOCK_REALTIME), for tests.
 *
 * libfaketime also shifts clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) deadlines and can
 * break threads; this moves nothing but what a stepped system clock moves. The file named
 * by $CLOCK_SHIM_FILE holds "<offset seconds> <synchronised 0|1>", read on every call, so a
 * test steps the clock of a running process by rewriting it. adjtimex() reports the kernel's
 * STA_UNSYNC accordingly (what "is the clock synchronised" asks).
 *
 * Built by the test: gcc -shared -fPIC -O2 -o clock_shim.so clock_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

static void read_shim(double *offset, int *synced) {
    *offset = 0.0;
    *synced = 1;
    const char *path = getenv("CLOCK_SHIM_FILE");
    if (path == NULL) return;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char text[64];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return;
    text[n] = '\0';
    char *rest;
    *offset = strtod(text, &rest);
    *synced = (int)strtol(rest, NULL, 10);
}

static void move(struct timespec *ts) {
    double offset;
    int synced;
    read_shim(&offset, &synced);
    long long whole = (long long)offset;
    long long nanos = (long long)((offset - (double)whole) * 1e9);
    ts->tv_sec += whole;
    ts->tv_nsec += nanos;
    while (ts->tv_nsec >= 1000000000L) { ts->tv_nsec -= 1000000000L; ts->tv_sec += 1; }
    while (ts->tv_nsec < 0) { ts->tv_nsec += 1000000000L; ts->tv_sec -= 1; }
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (real == NULL) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int result = real(id, ts);
    if (result == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) move(ts);
    return result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}

int adjtimex(struct timex *buf) {
    static int (*real)(struct timex *);
    if (real == NULL) real = (int (*)(struct timex *))dlsym(RTLD_NEXT, "adjtimex");
    int result = real(buf);
    if (result < 0) return result;
    double offset;
    int synced;
    read_shim(&offset, &synced);
    if (synced) {
        buf->status &= ~STA_UNSYNC;
        return TIME_OK;
    }
    buf->status |= STA_UNSYNC;
    return TIME_ERROR;
}
