/* main() for fuzz targets built without libFuzzer (any compiler): runs LLVMFuzzerTestOneInput()
 * once over every file named on the command line or found directly in a named directory, in
 * name order, as `fuzz_<target> -runs=0 DIR` does with libFuzzer. A broken invariant aborts,
 * which fails the ctest. Each input gets its own exact-size heap copy so that ASan builds catch
 * a read one byte past the end. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reads path whole into a malloc'd buffer of exactly its size (1 byte for an empty file). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (buf == NULL || err) {
        free(buf);
        return NULL;
    }
    uint8_t *exact = malloc(n ? n : 1);
    if (exact != NULL && n)
        memcpy(exact, buf, n);
    free(buf);
    *len = n;
    return exact;
}

static int run_file(const char *path)
{
    size_t len = 0;
    uint8_t *data = slurp(path, &len);
    if (data == NULL) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    (void)LLVMFuzzerTestOneInput(data, len); /* always 0; failures abort */
    free(data);
    return 0;
}

static int skip_dot(const struct dirent *d) { return d->d_name[0] != '.'; }

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    unsigned long runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0)
                return 1;
            runs++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, skip_dot, alphasort);
        if (n < 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            return 1;
        }
        int rv = 0;
        for (int j = 0; j < n; j++) {
            char path[4096];
            int pn = snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]->d_name);
            if (rv == 0 && (pn < 0 || (size_t)pn >= sizeof(path) || run_file(path) < 0))
                rv = -1;
            else if (rv == 0)
                runs++;
            free(names[j]);
        }
        free(names);
        if (rv < 0)
            return 1;
    }
    printf("replay: %lu inputs, no failure\n", runs);
    return runs > 0 ? 0 : 1; /* an empty corpus is a packaging mistake, not a pass */
}
