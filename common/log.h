#ifndef WSP_LOG_H
#define WSP_LOG_H

/* logfmt lines on stderr: ts=... level=... then the caller's key=value pairs. */
enum { WSP_LOG_ERROR = 0, WSP_LOG_WARN = 1, WSP_LOG_INFO = 2, WSP_LOG_DEBUG = 3 };

extern int wsp_log_level; /* set once in main() before threads start */

/* Appended after level= on every line, e.g. "worker=3 pid=1234 "; set once in main(). */
extern char wsp_log_tag[64];

/* Writes one line (fmt is the key=value tail); one write(2) so threads never interleave. */
void wsp_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3), cold));

/* Tests the level before anything is formatted. */
#define WSP_LOG(lv, ...) ((lv) <= wsp_log_level ? wsp_log_write((lv), __VA_ARGS__) : (void)0)

/* Parses "error", "warn", "info" or "debug"; returns the level or -EINVAL. Any thread. */
int wsp_log_level_parse(const char *s);

#endif
