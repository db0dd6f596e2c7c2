#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int wsp_log_level = WSP_LOG_INFO;
char wsp_log_tag[64];

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void wsp_log_write(int level, const char *fmt, ...)
{
    char line[1024];
    struct timeval tv;
    struct tm tm;
    (void)gettimeofday(&tv, NULL); /* cannot fail with a valid pointer */
    (void)gmtime_r(&tv.tv_sec, &tm);
    if (level < 0 || level > WSP_LOG_DEBUG)
        level = WSP_LOG_ERROR;
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s %s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level], wsp_log_tag);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* truncated: still one line */
    line[len++] = '\n';
    /* Best effort: a log line that cannot be written has nowhere else to go. */
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

int wsp_log_level_parse(const char *s)
{
    for (int i = 0; i <= WSP_LOG_DEBUG; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -EINVAL;
}
